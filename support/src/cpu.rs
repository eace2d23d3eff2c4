//! The CPUs a process may run on, and pinning to one of them.

use std::io;

use crate::os_error;

/// The CPUs this process may run on (its affinity mask), in increasing order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: `cpu_set_t` is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size we pass.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if r != 0 {
        return Err(os_error("sched_getaffinity"));
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `c < CPU_SETSIZE`, inside the set.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Pins the calling thread (the whole process if it has one thread) to `cpu`.
pub fn pin_to(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "CPU {cpu} is beyond the {} a CPU set holds; pick one of allowed_cpus()",
                libc::CPU_SETSIZE
            ),
        ));
    }
    // SAFETY: as in `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu < CPU_SETSIZE`, checked above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size we pass.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if r != 0 {
        return Err(os_error(&format!("sched_setaffinity(CPU {cpu})")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn pin_to_an_allowed_cpu_and_refuse_one_out_of_range() {
        let cpus = super::allowed_cpus().expect("sched_getaffinity");
        assert!(!cpus.is_empty());
        // A thread of its own, so that the test harness's threads stay unpinned.
        std::thread::spawn(move || {
            super::pin_to(cpus[0]).expect("pin to an allowed CPU");
            assert_eq!(super::allowed_cpus().expect("affinity"), vec![cpus[0]]);
        })
        .join()
        .expect("pinned thread");
        let e = super::pin_to(libc::CPU_SETSIZE as usize).expect_err("out of range");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }
}
