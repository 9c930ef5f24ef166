//! Filter manager: order, stop and resume, local replies through the encoders, the
//! buffer limits.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::*;

type Log = Rc<RefCell<Vec<String>>>;

/// A scripted filter that logs each hook it runs.
struct Probe {
    name: &'static str,
    log: Log,
    headers: HeadersStatus,
    data: DataStatus,
    reply_on_headers: Option<u16>,
    delay: Option<Duration>,
}

impl Probe {
    fn new(name: &'static str, log: &Log) -> Probe {
        Probe {
            name,
            log: Rc::clone(log),
            headers: HeadersStatus::Continue,
            data: DataStatus::Continue,
            reply_on_headers: None,
            delay: None,
        }
    }
}

impl StreamFilter for Probe {
    fn decode_headers(
        &mut self,
        head: &mut RequestHead,
        _end: bool,
        cx: &StreamContext<'_>,
        cb: &mut FilterCallbacks,
    ) -> HeadersStatus {
        self.log.borrow_mut().push(format!("{}:decode_headers", self.name));
        head.headers.append(b"x-seen", self.name.as_bytes());
        if let Some(s) = self.reply_on_headers {
            cb.send_local_reply(s, b"denied", vec![(b"x-why".to_vec(), self.name.as_bytes().to_vec())], "probe");
            return HeadersStatus::StopIteration;
        }
        if let Some(d) = self.delay {
            cb.wake_at(cx.now + d);
        }
        self.headers
    }

    fn decode_data(&mut self, data: &mut Vec<u8>, end: bool, _cb: &mut FilterCallbacks) -> DataStatus {
        self.log.borrow_mut().push(format!("{}:decode_data:{}:{end}", self.name, data.len()));
        if end {
            DataStatus::Continue
        } else {
            self.data
        }
    }

    fn encode_data(&mut self, data: &mut Vec<u8>, end: bool, _cb: &mut FilterCallbacks) -> DataStatus {
        self.log.borrow_mut().push(format!("{}:encode_data:{}:{end}", self.name, data.len()));
        if end {
            DataStatus::Continue
        } else {
            self.data
        }
    }

    fn encode_headers(&mut self, head: &mut ResponseHead, _end: bool, _cb: &mut FilterCallbacks) -> HeadersStatus {
        self.log.borrow_mut().push(format!("{}:encode_headers:{}", self.name, head.status));
        head.headers.append(b"x-encoded", self.name.as_bytes());
        HeadersStatus::Continue
    }

    fn decode_trailers(&mut self, trailers: &mut HeaderMap, _cb: &mut FilterCallbacks) -> TrailersStatus {
        self.log.borrow_mut().push(format!("{}:decode_trailers", self.name));
        trailers.append(b"x-seen", self.name.as_bytes());
        TrailersStatus::Continue
    }

    fn on_timer(&mut self, _cx: &StreamContext<'_>, _cb: &mut FilterCallbacks) -> HeadersStatus {
        self.log.borrow_mut().push(format!("{}:on_timer", self.name));
        HeadersStatus::Continue
    }

    fn on_destroy(&mut self) {
        self.log.borrow_mut().push(format!("{}:destroy", self.name));
    }
}

fn cx(now: Instant) -> StreamContext<'static> {
    let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
    StreamContext {
        now,
        remote: a,
        direct_remote: a,
        local: a,
        sni: None,
        peer_principals: &[],
        tls: false,
        cluster: "c",
        routed: true,
        health_check_failed: false,
        runtime: Box::leak(Box::default()),
    }
}

fn entries(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.borrow_mut())
}

#[test]
fn decodes_in_order_and_encodes_in_reverse() {
    let log = Log::default();
    let mut fm = FilterManager::new(1024);
    fm.start([Probe::new("a", &log), Probe::new("b", &log)], 1024);
    let mut head = RequestHead::default();
    let now = Instant::now();
    assert_eq!(fm.decode_headers(&mut head, true, &cx(now), 1), Decoded::Continue);
    assert!(fm.decoded());
    assert_eq!(head.headers.get_all(b"x-seen").collect::<Vec<_>>(), vec![&b"a"[..], b"b"]);
    let mut resp = ResponseHead { status: 200, ..ResponseHead::default() };
    assert_eq!(fm.encode_headers(&mut resp, true, 1), Decoded::Continue);
    assert_eq!(resp.headers.get_all(b"x-encoded").collect::<Vec<_>>(), vec![&b"b"[..], b"a"]);
    fm.destroy();
    assert_eq!(
        entries(&log),
        [
            "a:decode_headers",
            "b:decode_headers",
            "b:encode_headers:200",
            "a:encode_headers:200",
            "a:destroy",
            "b:destroy"
        ]
    );
}

#[test]
fn stop_then_resume_on_timer() {
    let log = Log::default();
    let mut a = Probe::new("a", &log);
    a.headers = HeadersStatus::StopIteration;
    a.delay = Some(Duration::from_millis(50));
    let mut fm = FilterManager::new(1024);
    fm.start([a, Probe::new("b", &log)], 1024);
    let mut head = RequestHead::default();
    let t0 = Instant::now();
    assert_eq!(fm.decode_headers(&mut head, true, &cx(t0), 1), Decoded::Stopped);
    assert_eq!(fm.wake_at(), Some(t0 + Duration::from_millis(50)));
    // Too early: nothing runs.
    assert_eq!(fm.on_timer(&mut head, true, &cx(t0), 1), Decoded::Stopped);
    assert_eq!(entries(&log), ["a:decode_headers"]);
    assert_eq!(fm.on_timer(&mut head, true, &cx(t0 + Duration::from_millis(50)), 1), Decoded::Continue);
    assert_eq!(entries(&log), ["a:on_timer", "b:decode_headers"]);
    assert_eq!(fm.wake_at(), None);
}

#[test]
fn local_reply_stops_decoding_and_runs_every_encoder() {
    let log = Log::default();
    let mut b = Probe::new("b", &log);
    b.reply_on_headers = Some(403);
    let mut fm = FilterManager::new(1024);
    fm.start([Probe::new("a", &log), b, Probe::new("c", &log)], 1024);
    let mut head = RequestHead::default();
    let Decoded::LocalReply(r) = fm.decode_headers(&mut head, true, &cx(Instant::now()), 1) else {
        panic!("expected a local reply");
    };
    assert_eq!((r.status, &r.body[..], r.details), (403, &b"denied"[..], "probe"));
    // The connection manager encodes the reply: every encoder filter sees it, c first.
    let mut resp = ResponseHead { status: r.status, ..ResponseHead::default() };
    assert_eq!(fm.encode_headers(&mut resp, false, 1), Decoded::Continue);
    assert_eq!(
        entries(&log),
        [
            "a:decode_headers",
            "b:decode_headers",
            "c:encode_headers:403",
            "b:encode_headers:403",
            "a:encode_headers:403"
        ]
    );
}

#[test]
fn buffering_filter_holds_the_body_until_it_continues() {
    let log = Log::default();
    let mut a = Probe::new("a", &log);
    a.data = DataStatus::StopIterationAndBuffer;
    let mut fm = FilterManager::new(1024);
    fm.start([a, Probe::new("b", &log)], 1024);
    let mut head = RequestHead::default();
    assert_eq!(fm.decode_headers(&mut head, false, &cx(Instant::now()), 1), Decoded::Continue);
    assert_eq!(fm.decode_data(b"hello ".to_vec(), false, 1), DataOutcome::Held);
    assert_eq!(fm.decode_data(b"world".to_vec(), true, 1), DataOutcome::Continue(b"hello world".to_vec()));
    assert_eq!(entries(&log)[2..], ["a:decode_data:6:false", "a:decode_data:5:true", "b:decode_data:11:true"]);
}

#[test]
fn request_buffer_limit_is_413_and_response_limit_500() {
    let log = Log::default();
    let mut a = Probe::new("a", &log);
    a.data = DataStatus::StopIterationAndBuffer;
    let mut fm = FilterManager::new(8);
    fm.start([a], 8);
    let mut head = RequestHead::default();
    fm.decode_headers(&mut head, false, &cx(Instant::now()), 1);
    assert_eq!(fm.decode_data(b"12345".to_vec(), false, 1), DataOutcome::Held);
    let DataOutcome::LocalReply(r) = fm.decode_data(b"6789".to_vec(), false, 1) else {
        panic!("expected 413");
    };
    assert_eq!((r.status, &r.body[..]), (413, &b"Payload Too Large"[..]));
    // Later chunks of an answered request are dropped.
    assert_eq!(fm.decode_data(b"x".to_vec(), true, 1), DataOutcome::Held);

    let mut enc = Probe::new("e", &log);
    enc.data = DataStatus::StopIterationAndBuffer;
    let mut fm = FilterManager::new(8);
    fm.start([enc], 8);
    fm.decode_headers(&mut head, true, &cx(Instant::now()), 1);
    let mut resp = ResponseHead { status: 200, ..ResponseHead::default() };
    fm.encode_headers(&mut resp, false, 1);
    let DataOutcome::LocalReply(r) = fm.encode_data(vec![0; 9], false, 1) else {
        panic!("expected 500");
    };
    assert_eq!((r.status, &r.body[..]), (500, &b"Internal Server Error"[..]));
}

#[test]
fn stop_all_buffers_until_continue_decoding() {
    let log = Log::default();
    let mut a = Probe::new("a", &log);
    a.headers = HeadersStatus::StopAllIterationAndBuffer;
    let mut fm = FilterManager::new(1024);
    fm.start([a, Probe::new("b", &log)], 1024);
    let mut head = RequestHead::default();
    let c = cx(Instant::now());
    assert_eq!(fm.decode_headers(&mut head, false, &c, 1), Decoded::Stopped);
    assert_eq!(fm.decode_data(b"abc".to_vec(), false, 1), DataOutcome::Held);
    assert_eq!(entries(&log), ["a:decode_headers"], "a stopped-all filter sees no data");
    assert_eq!(fm.continue_decoding(&mut head, false, &c, 1), Decoded::Continue);
    assert_eq!(fm.take_decode_buffer(), b"abc");
    assert_eq!(entries(&log), ["b:decode_headers"]);
}

/// An async request's outcome resumes the filter that stopped the headers (and only
/// that one): the chain goes on past it.
#[test]
fn an_async_outcome_resumes_the_stopped_filter() {
    use crate::http::async_client::Failure;
    let log = Log::default();
    let mut fm = FilterManager::new(1024);
    let mut a = Probe::new("a", &log);
    a.headers = HeadersStatus::StopIteration;
    fm.start([a, Probe::new("b", &log)], 1024);
    let mut head = RequestHead::default();
    let now = Instant::now();
    assert_eq!(fm.decode_headers(&mut head, true, &cx(now), 1), Decoded::Stopped);
    assert!(fm.take_calls().is_empty());
    // An outcome for a filter that did not stop the chain does not resume it.
    assert_eq!(fm.on_async_complete(1, 0, Err(Failure::Reset), &mut head, true, &cx(now), 2), Decoded::Stopped);
    assert!(!fm.decoded());
    assert_eq!(fm.on_async_complete(0, 0, Err(Failure::Timeout), &mut head, true, &cx(now), 3), Decoded::Continue);
    assert!(fm.decoded());
    assert_eq!(entries(&log), ["a:decode_headers", "b:decode_headers"]);
}

/// `StopIterationAndWatermark` from the filter holding the headers: its chunk is kept
/// and no more body goes to the filters; when its async answer continues the chain,
/// the kept body goes on from the next filter (ext_authz's `with_request_body`).
#[test]
fn a_watermark_keeps_the_body_until_the_async_answer() {
    use crate::http::async_client::Failure;
    let log = Log::default();
    let mut fm = FilterManager::new(4);
    let mut a = Probe::new("a", &log);
    a.headers = HeadersStatus::StopIteration;
    a.data = DataStatus::StopIterationAndWatermark;
    fm.start([a, Probe::new("b", &log)], 4);
    let mut head = RequestHead::default();
    let now = Instant::now();
    assert_eq!(fm.decode_headers(&mut head, false, &cx(now), 1), Decoded::Stopped);
    assert!(!fm.holds_request_body());
    assert_eq!(fm.decode_data(b"abcdefgh".to_vec(), false, 1), DataOutcome::Held, "kept past the limit");
    assert!(fm.holds_request_body());
    assert!(!fm.wants_request_body(), "no more body to the filters");
    assert_eq!(fm.on_async_complete(0, 0, Err(Failure::Reset), &mut head, false, &cx(now), 2), Decoded::Continue);
    assert_eq!(fm.resume_data(false, 3), DataOutcome::Continue(b"abcdefgh".to_vec()));
    assert_eq!(
        entries(&log),
        ["a:decode_headers", "a:decode_data:8:false", "b:decode_headers", "b:decode_data:8:false"]
    );
}

/// Request trailers while a filter holds the stream (it buffers the body): they reach
/// every filter up to that one; it continues on them, and the headers, its body and
/// then the trailers go on from the next filter (Envoy's `commonContinue`) — the
/// trailers no longer pass a filter by, nor reach one before its headers.
#[test]
fn trailers_reach_the_holding_filter_and_go_on_after_its_body() {
    let log = Log::default();
    let mut fm = FilterManager::new(1024);
    let mut b = Probe::new("b", &log);
    b.headers = HeadersStatus::StopIteration;
    b.data = DataStatus::StopIterationAndBuffer;
    fm.start([Probe::new("a", &log), b, Probe::new("c", &log)], 1024);
    let mut head = RequestHead::default();
    let now = Instant::now();
    assert_eq!(fm.decode_headers(&mut head, false, &cx(now), 1), Decoded::Stopped);
    assert_eq!(fm.decode_data(b"body".to_vec(), false, 1), DataOutcome::Held);
    let mut t = HeaderMap::default();
    t.append(b"x-client", b"1");
    assert_eq!(fm.decode_trailers(t, 1), TrailersRun::Held);
    assert!(fm.resume_pending(), "b continued on its trailers");
    assert_eq!(fm.resumed_trailers(2), None, "not before the chain went past b");
    assert_eq!(fm.continue_decoding(&mut head, true, &cx(now), 2), Decoded::Continue);
    assert_eq!(fm.resume_data(false, 3), DataOutcome::Continue(b"body".to_vec()));
    let Some(TrailersRun::Continue(t)) = fm.resumed_trailers(4) else { panic!("trailers") };
    assert_eq!(t.get_all(b"x-seen").collect::<Vec<_>>(), vec![&b"a"[..], b"b", b"c"]);
    assert_eq!(
        entries(&log),
        [
            "a:decode_headers",
            "b:decode_headers",
            "a:decode_data:4:false",
            "b:decode_data:4:false",
            "a:decode_trailers",
            "b:decode_trailers",
            "c:decode_headers",
            "c:decode_data:4:false",
            "c:decode_trailers",
        ]
    );
}
