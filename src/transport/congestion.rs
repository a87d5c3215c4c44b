//! A fixed congestion window for the advert connections.
//!
//! Adverts are ~100-byte datagrams at a fixed rate (a few KB/s at most), nothing a network
//! needs protecting from; what matters is that they flow the moment a path heals. With a
//! standard controller, the datagrams sent into a partition stay "in flight" until an ACK
//! proves them lost, the window fills up, the loss then collapses it to its minimum, and
//! what is queued waits for probe timeouts. Measured in the `mtls` namespace test (3 s
//! partition, a datagram every 10 ms): with NewReno the first datagram after the heal
//! arrived 0–100 ms late; with this window, within one send interval. No partition up to
//! the idle timeout can fill [`WINDOW`] (10 s × 20 adverts/s × ~110 bytes ≈ 22 KB, plus
//! keep-alives), and losses do not shrink it.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use quinn::congestion::{Controller, ControllerFactory};

/// The congestion window, in bytes.
pub(crate) const WINDOW: u64 = 256 * 1024;

/// Builds [`FixedWindow`] controllers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FixedWindowFactory;

impl ControllerFactory for FixedWindowFactory {
    fn build(self: Arc<Self>, _now: Instant, _current_mtu: u16) -> Box<dyn Controller> {
        Box::new(FixedWindow)
    }
}

/// A window of [`WINDOW`] bytes whatever is acknowledged or lost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FixedWindow;

impl Controller for FixedWindow {
    fn on_congestion_event(&mut self, _: Instant, _: Instant, _: bool, _: u64) {}

    fn on_mtu_update(&mut self, _new_mtu: u16) {}

    fn window(&self) -> u64 {
        WINDOW
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(*self)
    }

    fn initial_window(&self) -> u64 {
        WINDOW
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}
