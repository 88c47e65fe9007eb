//! `quota-proxy UPSTREAM`: the quota-faithful proxy (`secretsync_test_support::quota`) as a
//! process, for benchmarks: prints its URL on the first line of stdout and serves until killed;
//! `GET <url>/__quota/stats` answers its counts.

use secretsync_test_support::quota::{QuotaProxy, Rates};

fn main() {
    let upstream = std::env::args()
        .nth(1)
        .unwrap_or_else(|| panic!("usage: quota-proxy http://127.0.0.1:PORT"));
    let proxy = QuotaProxy::start(&upstream, Rates::AWS);
    println!("{}", proxy.url());
    loop {
        std::thread::park();
    }
}
