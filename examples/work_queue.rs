//! An MPMC work queue between processes: two producer processes post jobs, three
//! worker processes take them (each job to exactly one worker) and post results to a
//! second MPMC ring, which the parent collects.
//!
//! ```text
//! cargo run --release --example work_queue [JOBS]
//! ```

use std::collections::HashSet;

use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};
use shmlane::{mpmc, RecvError, RingOptions};

const PRODUCERS: u64 = 2;
const WORKERS: u64 = 3;

/// A job: its id and the numbers to sum.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Job {
    id: u64,
    values: [u64; 6],
}

/// A result: the job's id, its sum, and who computed it.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Done {
    id: u64,
    sum: u64,
    worker: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let jobs_total: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let pid = std::process::id();
    let (jobs_name, done_name) = (
        format!("/shmlane-example-jobs-{pid}"),
        format!("/shmlane-example-done-{pid}"),
    );
    let opts = RingOptions::new(1 << 16).unlink_on_drop(true);
    // The parent holds a producer of the job ring until every result is in, so that
    // workers see "all producers gone" only at the very end (not between one
    // producer's exit and the next one's start); and it is the result ring's consumer
    // from the start, collecting while the jobs flow (the rings are bounded: a parent
    // that waited for the producers first would leave the workers blocked on a full
    // result ring, and the producers on a full job ring).
    let job_keeper = mpmc::Producer::create(&jobs_name, &opts)?;
    let mut results = mpmc::Consumer::create(&done_name, &opts)?;
    let start = std::time::Instant::now();

    let mut children = Vec::new();
    for p in 0..PRODUCERS {
        // SAFETY: the child only uses the rings and exits; no other thread runs here.
        match unsafe { fork() }? {
            ForkResult::Child => {
                let code = match produce(&jobs_name, p, jobs_total) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("producer {p}: {e}");
                        1
                    }
                };
                std::process::exit(code);
            }
            ForkResult::Parent { child } => children.push(child),
        }
    }
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        // SAFETY: as above.
        match unsafe { fork() }? {
            ForkResult::Child => {
                let code = match work(&jobs_name, &done_name, w) {
                    Ok(n) => {
                        eprintln!("worker {w}: {n} jobs");
                        0
                    }
                    Err(e) => {
                        eprintln!("worker {w}: {e}");
                        1
                    }
                };
                std::process::exit(code);
            }
            ForkResult::Parent { child } => workers.push(child),
        }
    }
    let mut seen = HashSet::new();
    let mut per_worker = [0u64; WORKERS as usize];
    while seen.len() < jobs_total as usize {
        let done: Done = results.recv_pod()?;
        let job = job(done.id);
        assert_eq!(done.sum, job.values.iter().sum::<u64>(), "job {}", done.id);
        assert!(seen.insert(done.id), "job {} done twice", done.id);
        per_worker[done.worker as usize] += 1;
    }
    drop(job_keeper);
    for child in children.into_iter().chain(workers) {
        waitpid(child, None)?;
    }
    let elapsed = start.elapsed();
    println!(
        "{jobs_total} jobs by {PRODUCERS} producers and {WORKERS} workers in {elapsed:.2?} \
         ({:.0} jobs/s); per worker {per_worker:?}",
        jobs_total as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// Job `id`, the same in every process.
fn job(id: u64) -> Job {
    Job {
        id,
        values: std::array::from_fn(|i| id.wrapping_mul(31).wrapping_add(i as u64)),
    }
}

/// Producer `p` posts every `PRODUCERS`-th job, starting at `p`.
fn produce(name: &str, p: u64, total: u64) -> Result<(), shmlane::Error> {
    let mut tx = mpmc::Producer::open(name)?;
    for id in (p..total).step_by(PRODUCERS as usize) {
        if let Err(e) = tx.send_pod(&job(id)) {
            eprintln!("producer {p}: {e}");
            std::process::exit(1);
        }
    }
    Ok(())
}

/// A worker takes jobs until every producer has left, and posts each result.
fn work(jobs: &str, done: &str, w: u64) -> Result<u64, Box<dyn std::error::Error>> {
    let mut rx = mpmc::Consumer::open(jobs)?;
    let mut tx = mpmc::Producer::open(done)?;
    let mut n = 0;
    loop {
        let job: Job = match rx.recv_pod() {
            Ok(j) => j,
            Err(RecvError::Disconnected) => return Ok(n),
            Err(e) => return Err(e.into()),
        };
        let sum = job.values.iter().sum();
        tx.send_pod(&Done {
            id: job.id,
            sum,
            worker: w,
        })?;
        n += 1;
    }
}
