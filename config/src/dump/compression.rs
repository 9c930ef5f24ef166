//! Dump of the buffer, compressor and decompressor filters and their compression
//! libraries, in the form they decode from.

use super::{any, enum_name, Dump, Json};
use crate::filters::buffer::{Buffer, BufferPerRoute};
use crate::filters::compression::{
    CompressorKind, CompressorLibrary, DecompressorKind, DecompressorLibrary, GzipLevel, RuntimeFeatureFlag,
    BROTLI_COMPRESSOR_TYPE, BROTLI_DECOMPRESSOR_TYPE, GZIP_COMPRESSOR_TYPE, GZIP_DECOMPRESSOR_TYPE,
    ZSTD_COMPRESSOR_TYPE, ZSTD_DECOMPRESSOR_TYPE,
};
use crate::filters::compressor::{Compressor, CompressorPerRoute, DirectionConfig};
use crate::filters::decompressor::{DecompressDirection, Decompressor};

impl Dump for Buffer {
    fn dump(&self) -> Json {
        Json::obj().with("max_request_bytes", self.max_request_bytes)
    }
}

impl Dump for BufferPerRoute {
    fn dump(&self) -> Json {
        match self {
            BufferPerRoute::Disabled => Json::obj().with("disabled", true),
            BufferPerRoute::Buffer(b) => Json::obj().with("buffer", b.dump()),
        }
    }
}

impl Dump for RuntimeFeatureFlag {
    fn dump(&self) -> Json {
        let j = Json::obj().with("default_value", self.default_value);
        if self.runtime_key.is_empty() {
            j
        } else {
            j.with("runtime_key", &self.runtime_key)
        }
    }
}

fn gzip_level(level: u32) -> Json {
    let name = match level {
        1 => GzipLevel::L1,
        2 => GzipLevel::L2,
        3 => GzipLevel::L3,
        4 => GzipLevel::L4,
        5 => GzipLevel::L5,
        7 => GzipLevel::L7,
        8 => GzipLevel::L8,
        9 => GzipLevel::L9,
        _ => GzipLevel::L6,
    };
    enum_name(name)
}

impl Dump for CompressorLibrary {
    fn dump(&self) -> Json {
        let tc = match &self.kind {
            CompressorKind::Gzip { level, strategy, window_bits, memory_level, chunk_size } => any(
                GZIP_COMPRESSOR_TYPE,
                Json::obj()
                    .with("compression_level", gzip_level(*level))
                    .with("compression_strategy", enum_name(*strategy))
                    .with("window_bits", *window_bits)
                    .with("memory_level", *memory_level)
                    .with("chunk_size", *chunk_size),
            ),
            CompressorKind::Brotli {
                quality,
                mode,
                window_bits,
                input_block_bits,
                disable_literal_context_modeling,
                chunk_size,
            } => any(
                BROTLI_COMPRESSOR_TYPE,
                Json::obj()
                    .with("quality", *quality)
                    .with("encoder_mode", enum_name(*mode))
                    .with("window_bits", *window_bits)
                    .with("input_block_bits", *input_block_bits)
                    .with("disable_literal_context_modeling", *disable_literal_context_modeling)
                    .with("chunk_size", *chunk_size),
            ),
            CompressorKind::Zstd { level, checksum, strategy, chunk_size } => any(
                ZSTD_COMPRESSOR_TYPE,
                Json::obj()
                    .with("compression_level", *level)
                    .with("enable_checksum", *checksum)
                    .with("strategy", enum_name(*strategy))
                    .with("chunk_size", *chunk_size),
            ),
        };
        Json::obj().with("name", &self.name).with("typed_config", tc)
    }
}

impl Dump for DecompressorLibrary {
    fn dump(&self) -> Json {
        let tc = match &self.kind {
            DecompressorKind::Gzip { window_bits, chunk_size, max_inflate_ratio } => any(
                GZIP_DECOMPRESSOR_TYPE,
                Json::obj()
                    .with("window_bits", *window_bits)
                    .with("chunk_size", *chunk_size)
                    .with("max_inflate_ratio", *max_inflate_ratio),
            ),
            DecompressorKind::Brotli { chunk_size } => {
                any(BROTLI_DECOMPRESSOR_TYPE, Json::obj().with("chunk_size", *chunk_size))
            }
            DecompressorKind::Zstd { chunk_size } => {
                any(ZSTD_DECOMPRESSOR_TYPE, Json::obj().with("chunk_size", *chunk_size))
            }
        };
        Json::obj().with("name", &self.name).with("typed_config", tc)
    }
}

impl Dump for DirectionConfig {
    fn dump(&self) -> Json {
        Json::obj()
            .with("enabled", self.enabled.dump())
            .with("min_content_length", self.min_content_length)
            .with("content_type", self.content_type.clone())
    }
}

impl Dump for Compressor {
    fn dump(&self) -> Json {
        let r = &self.response;
        let response = Json::obj()
            .with("common_config", r.common.dump())
            .with("disable_on_etag_header", r.disable_on_etag_header)
            .with("remove_accept_encoding_header", r.remove_accept_encoding_header)
            .with(
                "uncompressible_response_codes",
                Json::Arr(r.uncompressible_response_codes.iter().map(|c| Json::from(*c)).collect()),
            )
            .with("status_header_enabled", r.status_header_enabled);
        Json::obj()
            .with("compressor_library", self.library.dump())
            .with_opt(
                "request_direction_config",
                self.request.as_ref().map(|c| Json::obj().with("common_config", c.dump())),
            )
            .with("response_direction_config", response)
            .with("choose_first", self.choose_first)
    }
}

impl Dump for CompressorPerRoute {
    fn dump(&self) -> Json {
        match self {
            CompressorPerRoute::Disabled => Json::obj().with("disabled", true),
            CompressorPerRoute::Overrides { remove_accept_encoding_header, compressor_library } => {
                let mut o = Json::obj();
                if let Some(r) = remove_accept_encoding_header {
                    o = o.with("response_direction_config", Json::obj().with("remove_accept_encoding_header", *r));
                }
                Json::obj()
                    .with("overrides", o.with_opt("compressor_library", compressor_library.as_ref().map(Dump::dump)))
            }
        }
    }
}

impl Dump for DecompressDirection {
    fn dump(&self) -> Json {
        Json::obj()
            .with("enabled", self.enabled.dump())
            .with("ignore_no_transform_header", self.ignore_no_transform_header)
    }
}

impl Dump for Decompressor {
    fn dump(&self) -> Json {
        Json::obj()
            .with("decompressor_library", self.library.dump())
            .with(
                "request_direction_config",
                Json::obj()
                    .with("common_config", self.request.dump())
                    .with("advertise_accept_encoding", self.advertise_accept_encoding),
            )
            .with("response_direction_config", Json::obj().with("common_config", self.response.dump()))
    }
}
