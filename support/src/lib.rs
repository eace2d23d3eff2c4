//! What shmlane's tests, criterion benches and the `shmlane bench` command share:
//! forking roles, pinning to a CPU, raw futex calls and the other baselines. Written
//! once here; not published (`publish = false`).
