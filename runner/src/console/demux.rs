//! Reading one command's output back out of the console stream: everything
//! the guest printed (kernel messages, the prompt, the shell's own lines)
//! with the command's output between the markers of [`super::line`].
//!
//! The stream is what a serial console carries: the tty turns every `\n`
//! into `\r\n`, a read may end anywhere (in a marker, between `\r` and
//! `\n`), and the kernel prints its messages wherever the line is. Lines
//! end at `\n`; carriage returns before it are dropped (other ones are
//! kept). The output streams as it comes: each complete line at once, a
//! line without its newline yet when [`Demux::flush`] is called (the
//! reader's idle tick), less any tail that may be the start of a marker.

use super::line::Markers;

/// What the stream said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// The shell ran the ready line; `stty` is whether the echo is off.
    Ready { stty: bool },
    /// The command started.
    Begin,
    /// Some of its output (stdout and stderr, merged as on the console).
    Output(Vec<u8>),
    /// It ended with this exit status (`None`: unreadable).
    End(Option<i32>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    /// Just after the begin marker: its copy may come next.
    Began,
    Running,
    Done,
}

/// The parser of one command's stream.
#[derive(Debug)]
pub struct Demux {
    ready: Vec<u8>,
    no_stty: Vec<u8>,
    begin: Vec<u8>,
    end: Vec<u8>,
    phase: Phase,
    /// The line being received (without its `\n`).
    line: Vec<u8>,
    /// How much of `line` was already given out by [`Demux::flush`].
    emitted: usize,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The length of the longest tail of `s` that is the start of `marker`.
fn marker_start_at_end(s: &[u8], marker: &[u8]) -> usize {
    (1..marker.len().min(s.len() + 1))
        .rev()
        .find(|&k| s[s.len() - k..] == marker[..k])
        .unwrap_or(0)
}

fn push_output(out: &mut Vec<Piece>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    if let Some(Piece::Output(o)) = out.last_mut() {
        o.extend_from_slice(bytes);
    } else {
        out.push(Piece::Output(bytes.to_vec()));
    }
}

impl Demux {
    pub fn new(m: &Markers) -> Demux {
        Demux {
            ready: m.ready.as_bytes().to_vec(),
            no_stty: m.no_stty.as_bytes().to_vec(),
            begin: m.begin.as_bytes().to_vec(),
            end: m.end.as_bytes().to_vec(),
            phase: Phase::Waiting,
            line: Vec::new(),
            emitted: 0,
        }
    }

    /// True once the end marker was read.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// True once the begin marker was read.
    pub fn has_begun(&self) -> bool {
        self.phase != Phase::Waiting
    }

    /// Reads `bytes` of the stream.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Piece> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.phase == Phase::Done {
                break;
            }
            if b == b'\n' {
                let line = std::mem::take(&mut self.line);
                self.end_of_line(&line, &mut out);
                self.emitted = 0;
            } else {
                self.line.push(b);
            }
        }
        out
    }

    fn end_of_line(&mut self, line: &[u8], out: &mut Vec<Piece>) {
        let cr = line.iter().rev().take_while(|&&b| b == b'\r').count();
        let l = &line[..line.len() - cr];
        match self.phase {
            Phase::Waiting => {
                if find(l, &self.ready).is_some() {
                    out.push(Piece::Ready { stty: true });
                } else if find(l, &self.no_stty).is_some() {
                    out.push(Piece::Ready { stty: false });
                } else if find(l, &self.begin).is_some() {
                    out.push(Piece::Begin);
                    self.phase = Phase::Began;
                }
            }
            Phase::Began if find(l, &self.begin).is_some() => self.phase = Phase::Running,
            Phase::Began | Phase::Running => {
                self.phase = Phase::Running;
                let from = self.emitted.min(l.len());
                if let Some(i) = find(l, &self.end) {
                    push_output(out, &l[from.min(i)..i]);
                    let digits: Vec<u8> = l[i + self.end.len()..]
                        .iter()
                        .copied()
                        .take_while(u8::is_ascii_digit)
                        .collect();
                    let code = std::str::from_utf8(&digits)
                        .ok()
                        .and_then(|d| d.parse().ok());
                    out.push(Piece::End(code));
                    self.phase = Phase::Done;
                } else {
                    push_output(out, &l[from..]);
                    push_output(out, b"\n");
                }
            }
            Phase::Done => {}
        }
    }

    /// The line received so far without its newline, for output that
    /// does not end its lines (a prompt, a progress bar): all of it but a
    /// tail that may be the start of the end marker, or carriage returns
    /// that may precede a newline.
    pub fn flush(&mut self) -> Vec<Piece> {
        let mut out = Vec::new();
        if self.phase != Phase::Running {
            return out;
        }
        let l = &self.line;
        let limit = match find(l, &self.end) {
            Some(i) => i,
            None => {
                let cr = l.iter().rev().take_while(|&&b| b == b'\r').count();
                l.len() - cr.max(marker_start_at_end(l, &self.end))
            }
        };
        if limit > self.emitted {
            push_output(&mut out, &l[self.emitted..limit]);
            self.emitted = limit;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demux() -> Demux {
        Demux::new(&Markers::new("n1"))
    }

    /// Output bytes and the other pieces of `pieces`.
    fn split(pieces: Vec<Piece>) -> (Vec<u8>, Vec<Piece>) {
        let mut bytes = Vec::new();
        let mut rest = Vec::new();
        for p in pieces {
            match p {
                Piece::Output(o) => bytes.extend(o),
                p => rest.push(p),
            }
        }
        (bytes, rest)
    }

    /// A real console stream: the prompt, the echoed ready line, kernel
    /// messages, CRLF line ends.
    const STREAM: &[u8] = b"\r\n/ # stty -echo 2>/dev/null && printf '@imgrun-%s-ready\\n' n1\r\n\
@imgrun-n1-ready\r\n/ # [    5.101] imgbuild-init: started console shell (pid 84)\r\n\
\r\n@imgrun-n1-begin\r\n@imgrun-n1-begin\r\nout1\r\n[   12.345678] virtio_net virtio0 eth0: link up\r\n\
err1\r\nno newline@imgrun-n1-end 7\r\n@imgrun-n1-end 7\r\n/ # ";

    #[test]
    fn markers_status_and_output() {
        let (bytes, rest) = split(demux().feed(STREAM));
        assert_eq!(
            rest,
            [
                Piece::Ready { stty: true },
                Piece::Begin,
                Piece::End(Some(7))
            ]
        );
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            "out1\n[   12.345678] virtio_net virtio0 eth0: link up\nerr1\nno newline"
        );
    }

    #[test]
    fn any_split_of_the_stream_reads_the_same() {
        let (whole, whole_rest) = split(demux().feed(STREAM));
        for chunk in 1..8 {
            let mut d = demux();
            let mut pieces = Vec::new();
            for c in STREAM.chunks(chunk) {
                pieces.extend(d.feed(c));
                pieces.extend(d.flush());
            }
            let (bytes, rest) = split(pieces);
            assert_eq!(bytes, whole, "chunks of {chunk}");
            assert_eq!(rest, whole_rest, "chunks of {chunk}");
            assert!(d.is_done());
        }
    }

    #[test]
    fn flush_gives_out_a_partial_line_once_and_holds_a_marker_start() {
        let mut d = demux();
        d.feed(b"@imgrun-n1-begin\n@imgrun-n1-begin\n");
        assert!(d.has_begun());
        assert_eq!(d.feed(b"50%"), []);
        assert_eq!(d.flush(), [Piece::Output(b"50%".to_vec())]);
        assert_eq!(d.flush(), []);
        d.feed(b" 100%\r");
        assert_eq!(d.flush(), [Piece::Output(b" 100%".to_vec())]);
        assert_eq!(d.feed(b"\n"), [Piece::Output(b"\n".to_vec())]);
        d.feed(b"tail@imgrun-n1-e");
        assert_eq!(d.flush(), [Piece::Output(b"tail".to_vec())]);
        assert_eq!(d.feed(b"nd 0"), []);
        assert_eq!(d.flush(), []);
        assert_eq!(d.feed(b"\r\n@imgrun-n1-end 0\r\n"), [Piece::End(Some(0))]);
    }

    #[test]
    fn a_lone_carriage_return_stays() {
        let (bytes, _) = split(
            demux().feed(b"@imgrun-n1-begin\r\n@imgrun-n1-begin\r\na\rb\r\r\n@imgrun-n1-end 0\r\n"),
        );
        assert_eq!(bytes, b"a\rb\n");
    }

    #[test]
    fn a_kernel_message_in_the_first_end_marker_leaves_the_second() {
        let (bytes, rest) = split(demux().feed(
            b"\n@imgrun-n1-begin\n@imgrun-n1-begin\nok\n@imgrun-n1-e[    9.1] clocksource: x\r\nnd 3\r\n@imgrun-n1-end 3\r\n",
        ));
        assert_eq!(rest, [Piece::Begin, Piece::End(Some(3))]);
        assert!(bytes.starts_with(b"ok\n"), "{bytes:?}");
    }

    #[test]
    fn a_kernel_message_in_the_first_begin_marker_leaves_the_second() {
        let (bytes, rest) = split(demux().feed(
            b"\n@imgrun-n1-be[    9.1] x\r\ngin\r\n@imgrun-n1-begin\r\nout\r\n@imgrun-n1-end 0\r\n",
        ));
        assert_eq!(rest, [Piece::Begin, Piece::End(Some(0))]);
        assert_eq!(bytes, b"out\n");
    }

    #[test]
    fn echoed_lines_and_other_nonces_are_no_markers() {
        let mut d = demux();
        let typed = b"printf '\\n@imgrun-%s-begin\\n' n1; printf '@imgrun-%s-end %d\\n' n1 $?\r\n\
@imgrun-n2-begin\r\n@imgrun-n1-readyish\r\n";
        let pieces = d.feed(typed);
        // `-readyish` contains the ready marker: a marker is a substring.
        assert_eq!(pieces, [Piece::Ready { stty: true }]);
        assert!(!d.has_begun());
        assert_eq!(
            demux().feed(b"@imgrun-n1-nostty\n"),
            [Piece::Ready { stty: false }]
        );
    }

    #[test]
    fn an_unreadable_status_is_none() {
        let p = demux().feed(b"@imgrun-n1-begin\n@imgrun-n1-begin\n@imgrun-n1-end x\n");
        assert_eq!(p, [Piece::Begin, Piece::End(None)]);
        // Nothing after the end is read.
        let mut d = demux();
        d.feed(b"@imgrun-n1-begin\n\n@imgrun-n1-end 1\n");
        assert_eq!(d.feed(b"more\n"), []);
        assert_eq!(d.flush(), []);
    }

    #[test]
    fn the_marker_start_at_the_end() {
        assert_eq!(marker_start_at_end(b"ab@im", b"@imgrun"), 3);
        assert_eq!(marker_start_at_end(b"ab", b"@imgrun"), 0);
        assert_eq!(marker_start_at_end(b"@", b"@imgrun"), 1);
        assert_eq!(marker_start_at_end(b"", b"@imgrun"), 0);
    }
}
