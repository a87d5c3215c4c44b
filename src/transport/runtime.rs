//! quinn's tokio runtime with timers that never fire early for nothing.
//!
//! quinn keeps one timer per connection and moves it to the earliest of the connection's
//! deadlines (ACK delay, loss detection, keep-alive, idle timeout) after every packet.
//! tokio's `Sleep::reset` to a *later* instant does not move the timer wheel's entry: the
//! entry still fires at the old instant, the runtime wakes, sees the new one and registers
//! again (tokio 1.x `TimerEntry::reset`, `extend_expiration`). With adverts every 50 ms that is
//! a wake-up for each deadline quinn moves: a loss-detection deadline moved by every ACK, an
//! ACK-delay deadline dropped when the ACK rode on our own advert. Measured on a 3-node lab at
//! 50 ms adverts (docs/benchmarks.md, issue 12 part 1), they were most of the agent's idle
//! wake-ups.
//!
//! [`ExactTimerRuntime`] is [`quinn::TokioRuntime`] (same sockets, same spawn) whose timer is
//! replaced, not extended, when its deadline moves: dropping a tokio `Sleep` takes its entry out
//! of the wheel, so the runtime only wakes at deadlines that are still wanted.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use quinn::{AsyncTimer, AsyncUdpSocket, Runtime, TokioRuntime};
use tokio::time::Sleep;

/// [`TokioRuntime`] with [`ExactTimer`]s.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ExactTimerRuntime;

impl Runtime for ExactTimerRuntime {
    fn new_timer(&self, at: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(ExactTimer::new(at))
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        TokioRuntime.spawn(future);
    }

    fn wrap_udp_socket(&self, sock: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        TokioRuntime.wrap_udp_socket(sock)
    }

    fn now(&self) -> Instant {
        TokioRuntime.now()
    }
}

/// A timer whose wheel entry always sits at its current deadline.
pub(crate) struct ExactTimer {
    /// The pending sleep; replaced in place (no allocation) when the deadline moves later.
    sleep: Pin<Box<Sleep>>,
    /// Where `sleep` is due.
    at: Instant,
}

impl ExactTimer {
    fn new(at: Instant) -> Self {
        ExactTimer {
            sleep: Box::pin(tokio::time::sleep_until(at.into())),
            at,
        }
    }
}

impl fmt::Debug for ExactTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExactTimer").field("at", &self.at).finish()
    }
}

impl AsyncTimer for ExactTimer {
    fn reset(self: Pin<&mut Self>, at: Instant) {
        let this = self.get_mut();
        if at > this.at {
            // Dropping the old sleep removes its entry from the wheel; the new one
            // registers when it is first polled.
            this.sleep.set(tokio::time::sleep_until(at.into()));
        } else if at < this.at {
            // Earlier: tokio re-registers the entry itself.
            this.sleep.as_mut().reset(at.into());
        }
        this.at = at;
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Future::poll(self.get_mut().sleep.as_mut(), cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A timer moved later fires at the new deadline, not the old one; moved earlier, at the
    /// earlier one (paused tokio clock: no real time passes).
    #[tokio::test(start_paused = true)]
    async fn a_moved_timer_fires_at_its_current_deadline() {
        let start = tokio::time::Instant::now();
        let mut timer = Box::pin(ExactTimer::new((start + Duration::from_millis(10)).into()));
        timer
            .as_mut()
            .reset((start + Duration::from_millis(30)).into());
        std::future::poll_fn(|cx| AsyncTimer::poll(timer.as_mut(), cx)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(30));

        let start = tokio::time::Instant::now();
        timer
            .as_mut()
            .reset((start + Duration::from_millis(50)).into());
        timer
            .as_mut()
            .reset((start + Duration::from_millis(5)).into());
        std::future::poll_fn(|cx| AsyncTimer::poll(timer.as_mut(), cx)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(5));
    }
}
