//! TCP connection state as a passive observer sees it (RFC 9293 §3.3.2),
//! simplified: states follow the flags each side sends, without sequence
//! validation, so a capture that misses packets still ends in a sensible
//! state. Names are those Suricata logs in EVE `tcp.state`.

use crate::decode::tcp_flags::{ACK, FIN, RST, SYN};
use crate::flow::Direction;

/// Connection state of a TCP flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpState {
    #[default]
    None,
    SynSent,
    SynRecv,
    Established,
    /// The client sent the first FIN.
    FinWait1,
    /// The server acknowledged the client's FIN.
    FinWait2,
    /// Both sent FIN, the second not yet acknowledged.
    Closing,
    /// The server sent the first FIN.
    CloseWait,
    /// Both sent FIN, server first.
    LastAck,
    TimeWait,
    Closed,
}

impl TcpState {
    /// The state after a segment with `flags` travelling in `dir`.
    pub fn next(self, dir: Direction, flags: u8) -> TcpState {
        use Direction::{ToClient, ToServer};
        use TcpState::*;
        if flags & RST != 0 {
            return Closed;
        }
        let syn = flags & SYN != 0;
        let ack = flags & ACK != 0;
        let fin = flags & FIN != 0;
        match (self, dir) {
            (None, ToServer) if syn && !ack => SynSent,
            (None, ToClient) if syn && ack => SynRecv,
            // Picked up mid-stream: any other first segment.
            (None, _) if !syn => {
                if fin {
                    Established.next(dir, flags)
                } else {
                    Established
                }
            }
            (None, _) => SynSent,
            (SynSent, ToClient) if syn && ack => SynRecv,
            (SynSent, ToServer) if !syn && ack => Established,
            (SynRecv, ToServer) if ack && !syn => {
                if fin {
                    FinWait1
                } else {
                    Established
                }
            }
            (SynRecv | Established, ToServer) if fin => FinWait1,
            (SynRecv | Established, ToClient) if fin => CloseWait,
            // FIN+ACK: the server acknowledges the client's FIN and closes too
            // (without sequence tracking, the ACK is taken to cover the FIN).
            (FinWait1, ToClient) if fin && ack => TimeWait,
            (FinWait1, ToClient) if fin => Closing,
            (FinWait1, ToClient) if ack => FinWait2,
            (FinWait2, ToClient) if fin => TimeWait,
            (Closing, _) if ack => TimeWait,
            // The last FIN acknowledged: nothing more can be sent.
            (TimeWait, _) if ack => Closed,
            (CloseWait, ToServer) if fin => LastAck,
            (LastAck, ToClient) if ack => Closed,
            (s, _) => s,
        }
    }

    /// The same state with client and server exchanged (the flow's sides
    /// were found the other way round). States this passive model reaches
    /// only with a handshake map to themselves; a flow is never swapped
    /// once its handshake was seen. FIN_WAIT2 maps to CLOSE_WAIT, which
    /// forgets that the first FIN was acknowledged: the next FIN still
    /// leads to LAST_ACK and CLOSED.
    pub fn mirrored(self) -> TcpState {
        use TcpState::*;
        match self {
            FinWait1 | FinWait2 => CloseWait,
            CloseWait => FinWait1,
            Closing => LastAck,
            LastAck => Closing,
            s => s,
        }
    }

    /// EVE `tcp.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            TcpState::None => "none",
            TcpState::SynSent => "syn_sent",
            TcpState::SynRecv => "syn_recv",
            TcpState::Established => "established",
            TcpState::FinWait1 => "fin_wait1",
            TcpState::FinWait2 => "fin_wait2",
            TcpState::Closing => "closing",
            TcpState::CloseWait => "close_wait",
            TcpState::LastAck => "last_ack",
            TcpState::TimeWait => "time_wait",
            TcpState::Closed => "closed",
        }
    }

    /// EVE `flow.state`: `new` before the handshake completes, `closed`
    /// once both sides finished (or one reset), `established` between.
    pub fn flow_state(self) -> &'static str {
        match self {
            TcpState::None | TcpState::SynSent | TcpState::SynRecv => "new",
            TcpState::TimeWait | TcpState::Closed => "closed",
            _ => "established",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tcp_flags::PSH;
    use Direction::{ToClient, ToServer};

    fn run(steps: &[(Direction, u8)]) -> TcpState {
        steps.iter().fold(TcpState::None, |s, &(d, f)| s.next(d, f))
    }

    #[test]
    fn handshake_data_and_client_close_ends_closed() {
        let s = run(&[
            (ToServer, SYN),
            (ToClient, SYN | ACK),
            (ToServer, ACK),
            (ToServer, PSH | ACK),
            (ToClient, ACK),
            (ToServer, FIN | ACK),
            (ToClient, FIN | ACK),
            (ToServer, ACK),
        ]);
        assert_eq!(s, TcpState::Closed);
        assert_eq!(s.flow_state(), "closed");
    }

    #[test]
    fn server_close_first_ends_closed() {
        let s = run(&[
            (ToServer, SYN),
            (ToClient, SYN | ACK),
            (ToServer, ACK),
            (ToClient, FIN | ACK),
            (ToServer, FIN | ACK),
            (ToClient, ACK),
        ]);
        assert_eq!(s, TcpState::Closed);
    }

    #[test]
    fn both_fins_without_the_last_ack_is_time_wait() {
        let s = run(&[
            (ToServer, SYN),
            (ToClient, SYN | ACK),
            (ToServer, ACK),
            (ToServer, FIN | ACK),
            (ToClient, FIN | ACK),
        ]);
        assert_eq!(s, TcpState::TimeWait);
        assert_eq!(s.flow_state(), "closed");
        assert_eq!(s.next(ToServer, ACK), TcpState::Closed);
        // Simultaneous close: FINs cross, each side acknowledges the other.
        let s = run(&[
            (ToServer, SYN),
            (ToClient, SYN | ACK),
            (ToServer, ACK),
            (ToServer, FIN),
            (ToClient, FIN),
        ]);
        assert_eq!(s, TcpState::Closing);
        assert_eq!(s.next(ToServer, ACK).next(ToClient, ACK), TcpState::Closed);
    }

    #[test]
    fn half_open_stays_new_and_reset_closes() {
        assert_eq!(run(&[(ToServer, SYN)]).flow_state(), "new");
        assert_eq!(
            run(&[(ToServer, SYN), (ToClient, RST | ACK)]),
            TcpState::Closed
        );
    }

    #[test]
    fn mirrored_close_ends_closed_either_way() {
        // Picked up mid-stream, the client closing first, but the sides
        // found swapped after the first FIN: the rest of the close, seen
        // with the right sides, still ends closed.
        let s = run(&[(ToServer, ACK), (ToServer, FIN | ACK)]).mirrored();
        assert_eq!(s, TcpState::CloseWait);
        assert_eq!(
            s.next(ToServer, FIN | ACK).next(ToClient, ACK),
            TcpState::Closed
        );
        for s in [TcpState::Established, TcpState::Closing, TcpState::FinWait1] {
            assert_eq!(s.mirrored().mirrored().flow_state(), s.flow_state());
        }
    }

    #[test]
    fn midstream_pickup_is_established() {
        assert_eq!(run(&[(ToServer, PSH | ACK)]), TcpState::Established);
        assert_eq!(
            run(&[(ToClient, ACK), (ToServer, FIN | ACK)]),
            TcpState::FinWait1
        );
    }
}
