//! The compression libraries of the compressor and decompressor filters
//! (`compressor_library` / `decompressor_library`, a `TypedExtensionConfig`):
//! `envoy.extensions.compression.{gzip,brotli,zstd}.{compressor,decompressor}.v3.*`,
//! with Envoy's ranges and defaults, and `config.core.v3.RuntimeFeatureFlag`.

use crate::decode::{typed_config, Decode, Decoder, Fields};
use crate::error::ErrorKind;
use crate::node::Node;

pub const GZIP_COMPRESSOR_TYPE: &str = "envoy.extensions.compression.gzip.compressor.v3.Gzip";
pub const BROTLI_COMPRESSOR_TYPE: &str = "envoy.extensions.compression.brotli.compressor.v3.Brotli";
pub const ZSTD_COMPRESSOR_TYPE: &str = "envoy.extensions.compression.zstd.compressor.v3.Zstd";
pub const GZIP_DECOMPRESSOR_TYPE: &str = "envoy.extensions.compression.gzip.decompressor.v3.Gzip";
pub const BROTLI_DECOMPRESSOR_TYPE: &str = "envoy.extensions.compression.brotli.decompressor.v3.Brotli";
pub const ZSTD_DECOMPRESSOR_TYPE: &str = "envoy.extensions.compression.zstd.decompressor.v3.Zstd";

/// `config.core.v3.RuntimeFeatureFlag`: on or off, the runtime key's boolean when the
/// runtime has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeFeatureFlag {
    pub default_value: bool,
    pub runtime_key: String,
}

impl RuntimeFeatureFlag {
    /// An absent flag: always on.
    pub fn on() -> RuntimeFeatureFlag {
        RuntimeFeatureFlag { default_value: true, runtime_key: String::new() }
    }
}

impl Decode for RuntimeFeatureFlag {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let mut f = Fields::of(d, node, path)?;
        let default_value: Option<bool> = f.req(d, "default_value");
        let runtime_key: Option<String> = f.req(d, "runtime_key");
        let line = f.line();
        let key_path = f.field_path("runtime_key");
        f.finish(d);
        let runtime_key = runtime_key?;
        if runtime_key.is_empty() {
            d.error(ErrorKind::Invalid, &key_path, line, "runtime_key must not be empty");
        }
        Some(RuntimeFeatureFlag { default_value: default_value?, runtime_key })
    }
}

/// A `UInt32Value` within Envoy's range, or its default when absent.
fn ranged(f: &mut Fields<'_>, d: &mut Decoder, name: &'static str, lo: u32, hi: u32, default: u32) -> u32 {
    let path = f.field_path(name);
    let line = f.line();
    match f.opt::<u32>(d, name) {
        None => default,
        Some(v) if (lo..=hi).contains(&v) => v,
        Some(v) => {
            d.error(ErrorKind::Invalid, &path, line, format!("{v} is out of range: must be in [{lo}, {hi}]"));
            default
        }
    }
}

crate::proto_enum! {
    /// `Gzip.CompressionLevel` (BEST_SPEED and BEST_COMPRESSION are aliases of 1 and 9).
    pub enum GzipLevel {
        Default = ("DEFAULT_COMPRESSION", 0),
        BestSpeed = ("BEST_SPEED", 1),
        L1 = ("COMPRESSION_LEVEL_1", 1),
        L2 = ("COMPRESSION_LEVEL_2", 2),
        L3 = ("COMPRESSION_LEVEL_3", 3),
        L4 = ("COMPRESSION_LEVEL_4", 4),
        L5 = ("COMPRESSION_LEVEL_5", 5),
        L6 = ("COMPRESSION_LEVEL_6", 6),
        L7 = ("COMPRESSION_LEVEL_7", 7),
        L8 = ("COMPRESSION_LEVEL_8", 8),
        L9 = ("COMPRESSION_LEVEL_9", 9),
        BestCompression = ("BEST_COMPRESSION", 9),
    }
}

impl GzipLevel {
    /// zlib's level (`Z_DEFAULT_COMPRESSION` is 6).
    pub fn level(self) -> u32 {
        use crate::decode::ProtoEnum;
        match self {
            GzipLevel::Default => 6,
            other => GzipLevel::VARIANTS.iter().find(|(_, _, v)| *v == other).map_or(6, |(_, n, _)| *n as u32),
        }
    }
}

crate::proto_enum! {
    /// `Gzip.CompressionStrategy`.
    pub enum GzipStrategy {
        Default = ("DEFAULT_STRATEGY", 0),
        Filtered = ("FILTERED", 1),
        HuffmanOnly = ("HUFFMAN_ONLY", 2),
        Rle = ("RLE", 3),
        Fixed = ("FIXED", 4),
    }
}

crate::proto_enum! {
    /// `Brotli.EncoderMode`.
    pub enum BrotliMode {
        Default = ("DEFAULT", 0),
        Generic = ("GENERIC", 1),
        Text = ("TEXT", 2),
        Font = ("FONT", 3),
    }
}

crate::proto_enum! {
    /// `Zstd.Strategy` (`DEFAULT`: the level's own).
    pub enum ZstdStrategy {
        Default = ("DEFAULT", 0),
        Fast = ("FAST", 1),
        Dfast = ("DFAST", 2),
        Greedy = ("GREEDY", 3),
        Lazy = ("LAZY", 4),
        Lazy2 = ("LAZY2", 5),
        Btlazy2 = ("BTLAZY2", 6),
        Btopt = ("BTOPT", 7),
        Btultra = ("BTULTRA", 8),
        Btultra2 = ("BTULTRA2", 9),
    }
}

/// A compressor library's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompressorKind {
    Gzip {
        level: u32,
        strategy: GzipStrategy,
        window_bits: u32,
        memory_level: u32,
        chunk_size: u32,
    },
    Brotli {
        quality: u32,
        mode: BrotliMode,
        window_bits: u32,
        input_block_bits: u32,
        disable_literal_context_modeling: bool,
        chunk_size: u32,
    },
    Zstd {
        level: u32,
        checksum: bool,
        strategy: ZstdStrategy,
        chunk_size: u32,
    },
}

/// `compressor_library`: its `name` (a stats label) and settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressorLibrary {
    pub name: String,
    pub kind: CompressorKind,
}

impl CompressorLibrary {
    /// `Content-Encoding` of its output (Envoy's `contentEncoding()`).
    pub fn content_encoding(&self) -> &'static str {
        match self.kind {
            CompressorKind::Gzip { .. } => "gzip",
            CompressorKind::Brotli { .. } => "br",
            CompressorKind::Zstd { .. } => "zstd",
        }
    }

    /// The library's stats prefix (`statsPrefix()`).
    pub fn stats_prefix(&self) -> &'static str {
        match self.kind {
            CompressorKind::Gzip { .. } => "gzip.",
            CompressorKind::Brotli { .. } => "brotli.",
            CompressorKind::Zstd { .. } => "zstd.",
        }
    }
}

/// A `TypedExtensionConfig`: `name` and `typed_config`.
fn extension<'n>(
    d: &mut Decoder,
    node: &'n Node,
    path: &str,
) -> Option<(String, crate::decode::TypedConfig<'n>, String)> {
    let mut f = Fields::of(d, node, path)?;
    let name: Option<String> = f.req(d, "name");
    let tc_path = f.field_path("typed_config");
    let tc = f.take("typed_config");
    let line = f.line();
    f.finish(d);
    let Some(tc) = tc else {
        d.error(ErrorKind::Missing, &tc_path, line, "required field is missing");
        return None;
    };
    let t = typed_config(d, tc, &tc_path)?;
    Some((name?, t, tc_path))
}

impl Decode for CompressorLibrary {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let (name, t, tc_path) = extension(d, node, path)?;
        let mut f = t.fields;
        let kind = match t.type_name.as_str() {
            GZIP_COMPRESSOR_TYPE => {
                let level: GzipLevel = f.or(d, "compression_level", GzipLevel::Default);
                let strategy = f.or(d, "compression_strategy", GzipStrategy::Default);
                // Envoy's defaults (gzip/compressor/config.cc): memLevel 5, window bits 12.
                let memory_level = ranged(&mut f, d, "memory_level", 1, 9, 5);
                let window_bits = ranged(&mut f, d, "window_bits", 9, 15, 12);
                let chunk_size = ranged(&mut f, d, "chunk_size", 4096, 65536, 4096);
                CompressorKind::Gzip { level: level.level(), strategy, window_bits, memory_level, chunk_size }
            }
            BROTLI_COMPRESSOR_TYPE => CompressorKind::Brotli {
                quality: ranged(&mut f, d, "quality", 0, 11, 3),
                mode: f.or(d, "encoder_mode", BrotliMode::Default),
                window_bits: ranged(&mut f, d, "window_bits", 10, 24, 18),
                input_block_bits: ranged(&mut f, d, "input_block_bits", 16, 24, 24),
                chunk_size: ranged(&mut f, d, "chunk_size", 4096, 65536, 4096),
                disable_literal_context_modeling: f.or(d, "disable_literal_context_modeling", false),
            },
            ZSTD_COMPRESSOR_TYPE => {
                f.unsupported(d, &["dictionary"]);
                CompressorKind::Zstd {
                    level: ranged(&mut f, d, "compression_level", 1, 22, 3),
                    checksum: f.or(d, "enable_checksum", false),
                    strategy: f.or(d, "strategy", ZstdStrategy::Default),
                    chunk_size: ranged(&mut f, d, "chunk_size", 4096, 65536, 4096),
                }
            }
            other => {
                d.error(
                    ErrorKind::Unsupported,
                    &format!("{tc_path}.@type"),
                    node.line,
                    format!("Didn't find a registered implementation for '{name}' with type URL: '{other}'"),
                );
                return None;
            }
        };
        f.finish(d);
        Some(CompressorLibrary { name, kind })
    }
}

/// A decompressor library's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecompressorKind {
    Gzip { window_bits: u32, chunk_size: u32, max_inflate_ratio: u32 },
    Brotli { chunk_size: u32 },
    Zstd { chunk_size: u32 },
}

/// `decompressor_library`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecompressorLibrary {
    pub name: String,
    pub kind: DecompressorKind,
}

impl DecompressorLibrary {
    /// The `Content-Encoding` it undoes.
    pub fn content_encoding(&self) -> &'static str {
        match self.kind {
            DecompressorKind::Gzip { .. } => "gzip",
            DecompressorKind::Brotli { .. } => "br",
            DecompressorKind::Zstd { .. } => "zstd",
        }
    }

    pub fn stats_prefix(&self) -> &'static str {
        match self.kind {
            DecompressorKind::Gzip { .. } => "gzip.",
            DecompressorKind::Brotli { .. } => "brotli.",
            DecompressorKind::Zstd { .. } => "zstd.",
        }
    }
}

impl Decode for DecompressorLibrary {
    fn decode(d: &mut Decoder, node: &Node, path: &str) -> Option<Self> {
        let (name, t, tc_path) = extension(d, node, path)?;
        let mut f = t.fields;
        let kind = match t.type_name.as_str() {
            GZIP_DECOMPRESSOR_TYPE => DecompressorKind::Gzip {
                window_bits: ranged(&mut f, d, "window_bits", 9, 15, 15),
                chunk_size: ranged(&mut f, d, "chunk_size", 4096, 65536, 4096),
                max_inflate_ratio: ranged(&mut f, d, "max_inflate_ratio", 1, 1032, 1032),
            },
            BROTLI_DECOMPRESSOR_TYPE => {
                f.default_only(
                    d,
                    "disable_ring_buffer_reallocation",
                    false,
                    "the brotli decoder sluice uses always grows its ring buffer as needed",
                );
                DecompressorKind::Brotli { chunk_size: ranged(&mut f, d, "chunk_size", 4096, 65536, 4096) }
            }
            ZSTD_DECOMPRESSOR_TYPE => {
                f.unsupported(d, &["dictionaries"]);
                DecompressorKind::Zstd { chunk_size: ranged(&mut f, d, "chunk_size", 4096, 65536, 4096) }
            }
            other => {
                d.error(
                    ErrorKind::Unsupported,
                    &format!("{tc_path}.@type"),
                    node.line,
                    format!("Didn't find a registered implementation for '{name}' with type URL: '{other}'"),
                );
                return None;
            }
        };
        f.finish(d);
        Some(DecompressorLibrary { name, kind })
    }
}

#[cfg(test)]
mod tests {
    use crate::decode::Decoder;
    use crate::hcm::{HttpFilter, HttpFilterKind};
    use crate::node::parse;

    use super::CompressorKind;

    fn gzip(fields: &str) -> (Option<CompressorKind>, Vec<String>) {
        let yaml = format!(
            "name: c\ntyped_config:\n  '@type': type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor\n  compressor_library:\n    name: gzip\n    typed_config:\n      '@type': type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip\n{fields}"
        );
        let n = parse(&yaml).unwrap();
        let mut d = Decoder::new();
        let kind = d.decode::<HttpFilter>(&n, "f").and_then(|f| match f.kind {
            HttpFilterKind::Compressor(c) => Some(c.library.kind.clone()),
            _ => None,
        });
        (kind, d.errors.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn gzip_memory_level_and_strategy_take_zlibs_ranges_and_envoys_defaults() {
        use super::GzipStrategy;
        let (k, e) = gzip("      memory_level: 3\n      window_bits: 10\n      compression_strategy: RLE\n");
        assert!(e.is_empty(), "{e:?}");
        assert!(
            matches!(
                k,
                Some(CompressorKind::Gzip { memory_level: 3, window_bits: 10, strategy: GzipStrategy::Rle, .. })
            ),
            "{k:?}"
        );
        let (_, e) = gzip("      memory_level: 10\n");
        assert!(
            e.iter().any(|e| e.contains("compressor_library.typed_config.memory_level") && e.contains("[1, 9]")),
            "{e:?}"
        );
        let (k, e) = gzip("");
        assert!(e.is_empty(), "{e:?}");
        assert!(
            matches!(
                k,
                Some(CompressorKind::Gzip {
                    memory_level: 5,
                    window_bits: 12,
                    chunk_size: 4096,
                    strategy: GzipStrategy::Default,
                    ..
                })
            ),
            "{k:?}"
        );
    }
}
