//! Reaping: PID 1 inherits every orphan and must collect all of them.

use crate::sys::{Exited, Sys};

/// Reaps every child that has exited; returns them in order.
pub fn reap_all<S: Sys>(sys: &mut S) -> Vec<Exited> {
    let mut out = Vec::new();
    while let Some(e) = sys.reap_one() {
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    #[test]
    fn reaps_everything() {
        let mut sys = FakeSys::new();
        sys.exits
            .extend([Exited { pid: 5, code: 0 }, Exited { pid: 9, code: 137 }]);
        assert_eq!(reap_all(&mut sys).len(), 2);
        assert!(reap_all(&mut sys).is_empty());
    }
}
