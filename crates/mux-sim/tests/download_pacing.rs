//! mux-sim's master downloads paced like a CDN's: a time to first byte, and a cap on each
//! connection on its own, so that two connections reading two ranges get about twice the
//! bytes per second of one. mux-sim runs in this process, on a real socket, read with reqwest.
//! Timing bounds are generous: they assert the property (the cap holds, connections add up),
//! not a figure.

use std::time::{Duration, Instant};

use mux_sim::admin_client::SimAdmin;
use mux_sim::{Options, Switches, content};

/// The cap of these tests: 4 MB/s per connection.
const RATE: u64 = 4_000_000;
const FIRST_BYTE: Duration = Duration::from_millis(300);
const SIZE: u64 = 8 << 20;

/// mux-sim with the cap and the first-byte delay, and a ready master of [`SIZE`] bytes: the
/// admin client, the master's signed URL and its seed.
async fn paced_sim() -> (String, u64) {
    let switches = Switches {
        master_prepare_delay: Duration::ZERO,
        download_rate_per_connection: RATE,
        download_first_byte: FIRST_BYTE,
        ..Switches::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let options = Options {
        tokens: vec![("id".into(), "secret".into())],
        public_url: None,
        switches,
    };
    tokio::spawn(mux_sim::serve(listener, options, std::future::pending()));
    let master = SimAdmin::new(&base)
        .ready_master(SIZE, Duration::from_secs(10))
        .await
        .expect("a ready master");
    (master.url, master.seed)
}

/// One ranged GET on a connection of its own: the answer's status and `Content-Range`, its
/// body, the time to its headers and the time to its end.
async fn get_range(url: &str, range: (u64, u64)) -> (u16, String, Vec<u8>, Duration, Duration) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let started = Instant::now();
    let response = http
        .get(url)
        .header("Range", format!("bytes={}-{}", range.0, range.1 - 1))
        .send()
        .await
        .unwrap();
    let first_byte = started.elapsed();
    let status = response.status().as_u16();
    let content_range = response
        .headers()
        .get("content-range")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.bytes().await.unwrap().to_vec();
    (status, content_range, body, first_byte, started.elapsed())
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_connection_is_capped_and_two_connections_get_twice_the_bytes() {
    let (url, seed) = paced_sim().await;
    let half = SIZE / 2;

    // One connection, 2 MB: a 206 of exactly that range, after the first-byte delay, no faster
    // than the cap.
    let range = (1_000_000, 3_000_000);
    let (status, content_range, body, first_byte, elapsed) = get_range(&url, range).await;
    assert_eq!(status, 206);
    assert_eq!(content_range, format!("bytes 1000000-2999999/{SIZE}"));
    let mut expected = vec![0u8; 2_000_000];
    content::fill(seed, SIZE, range.0, &mut expected);
    assert!(body == expected, "the range's bytes are the master's");
    assert!(first_byte >= FIRST_BYTE, "first byte after {first_byte:?}");
    let one = mb_per_s(body.len() as u64, elapsed - first_byte);
    assert!(
        one <= RATE as f64 / 1e6 * 1.1,
        "one connection got {one:.2} MB/s, over the cap"
    );

    // Two connections at once, a half of the file each: each is capped on its own, so they
    // get about twice the one connection's rate together (at least 1.6×: generous).
    let started = Instant::now();
    let (a, b) = tokio::join!(get_range(&url, (0, half)), get_range(&url, (half, SIZE)));
    let both = started.elapsed();
    for (status, _, body, _, elapsed) in [&a, &b] {
        assert_eq!((*status, body.len() as u64), (206, half));
        let each = mb_per_s(half, *elapsed - FIRST_BYTE);
        assert!(
            each <= RATE as f64 / 1e6 * 1.1,
            "a connection got {each:.2} MB/s"
        );
    }
    assert_eq!(
        [a.2, b.2].concat(),
        {
            let mut whole = vec![0u8; SIZE as usize];
            content::fill(seed, SIZE, 0, &mut whole);
            whole
        },
        "the two ranges make the master"
    );
    let aggregate = mb_per_s(SIZE, both - FIRST_BYTE);
    assert!(
        aggregate >= 1.6 * one,
        "two connections got {aggregate:.2} MB/s together, one alone {one:.2} MB/s"
    );
}
