//! `patchmix serve` end to end over real HTTP (`reqwest`): a server started on `127.0.0.1:0`
//! through the library entry ([`Server::start`]) on a gallery of real MNIST digits built by
//! `patchmix index build`, checked against the CLI as the independent reference:
//! `/v1/embed` equals `patchmix embed` bit for bit (tract and ONNX Runtime), `/v1/search`
//! equals `patchmix search`; every bad input gets its documented 4xx and a JSON error; an
//! index written through `/v1/index` survives a restart; a full queue answers 503 with
//! `Retry-After`; concurrent requests are batched; shutdown finishes requests in flight; and
//! the `patchmix serve` binary stops cleanly on SIGTERM.

use ndarray::{Array2, ArrayView4};
use patchmix_export::data::{Dataset, DatasetRef};
use patchmix_export::index::{AnnLoad, Gallery};
use patchmix_export::knn::FeatureIndex;
use patchmix_export::runtime::{Embed, Runtime, RuntimeError, open_encoder};
use patchmix_train::serve::{BatchConfig, ImageLimits, ServeConfig, Server};
use reqwest::StatusCode;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

#[path = "common/cli.rs"]
mod cli;
#[path = "common/gallery.rs"]
mod gallery;
use cli::{error_line, ok, s};
use gallery::{export_random, mnist_folder};

/// Gallery size.
const N: usize = 40;

/// A random-init encoder, an ImageFolder of MNIST test digits 0..N and its gallery.
struct Fixture {
    dir: tempfile::TempDir,
    model: PathBuf,
    folder: PathBuf,
    gallery: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let model = export_random(dir.path(), "enc.onnx", "3");
        let folder = mnist_folder(&dir.path().join("gallery"), 0, N);
        let gallery = dir.path().join("gallery.pmx");
        ok(&[
            "index",
            "build",
            "--model",
            s(&model),
            "--data",
            s(&folder),
            "--out",
            s(&gallery),
        ]);
        Fixture {
            dir,
            model,
            folder,
            gallery,
        }
    })
}

/// MNIST test image `i` as PNG bytes.
fn mnist_png(i: usize) -> Vec<u8> {
    let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist10k:test");
    let ds = Dataset::open(&s(&mnist).parse::<DatasetRef>().unwrap()).unwrap();
    png(&ds.image(i).unwrap())
}

fn png(img: &image::RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Starts a server on a free port over a copy of `gallery` (or the gallery itself).
async fn start_with(
    config: ServeConfig,
    encoder: Box<dyn Embed + Send>,
    gallery: &Path,
) -> (Server, String) {
    let g = Gallery::load(gallery, AnnLoad::View).unwrap();
    let server = Server::start(
        "127.0.0.1:0".parse().unwrap(),
        config,
        encoder,
        g,
        gallery.to_path_buf(),
    )
    .await
    .unwrap();
    let url = format!("http://{}", server.addr());
    (server, url)
}

async fn start(config: ServeConfig, runtime: Runtime, gallery: &Path) -> (Server, String) {
    let encoder = open_encoder(&fixture().model, runtime).unwrap();
    start_with(config, encoder, gallery).await
}

/// A private copy of the fixture's gallery (for tests that write it).
fn gallery_copy(name: &str) -> PathBuf {
    let f = fixture();
    let path = f.dir.path().join(name);
    std::fs::copy(&f.gallery, &path).unwrap();
    path
}

#[derive(serde::Deserialize, Debug)]
struct Embedded {
    dim: usize,
    vectors: Vec<Vec<f32>>,
}

#[derive(serde::Deserialize, Debug, PartialEq)]
struct Hit {
    id: String,
    label: String,
    score: f32,
}

#[derive(serde::Deserialize, Debug)]
struct Results {
    results: Vec<Hit>,
}

async fn post(url: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn post_json(url: &str, body: &serde_json::Value) -> reqwest::Response {
    post(url, "application/json", serde_json::to_vec(body).unwrap()).await
}

/// `patchmix embed` over `folder` in one batch: the reference features.
fn cli_embed(folder: &Path, runtime: &str, out: &Path) -> Array2<f32> {
    ok(&[
        "embed",
        "--model",
        s(&fixture().model),
        "--data",
        s(folder),
        "--out",
        s(out),
        "--runtime",
        runtime,
        "--batch",
        "1000",
    ]);
    FeatureIndex::load(out).unwrap().features().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_equals_patchmix_embed_bit_for_bit_with_tract_and_ort() {
    let f = fixture();
    let ds = Dataset::open(&s(&f.folder).parse::<DatasetRef>().unwrap()).unwrap();
    // The folder's images in the dataset's order, as PNG bytes read from disk.
    let images: Vec<String> = (0..ds.len())
        .map(|i| b64(&std::fs::read(f.folder.join(ds.item_id(i))).unwrap()))
        .collect();
    for (runtime, name) in [(Runtime::Tract, "tract"), (Runtime::Ort, "ort")] {
        let reference = cli_embed(
            &f.folder,
            name,
            &f.dir.path().join(format!("ref-{name}.safetensors")),
        );
        let config = ServeConfig {
            batch: BatchConfig {
                max_batch: 64,
                ..BatchConfig::default()
            },
            ..ServeConfig::default()
        };
        let (server, url) = start(config, runtime, &f.gallery).await;
        // One JSON batch of all the images: one encoder call of N, as `embed --batch 1000`.
        let r = post_json(
            &format!("{url}/v1/embed"),
            &serde_json::json!({ "images": images }),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let got: Embedded = r.json().await.unwrap();
        assert_eq!(got.dim, reference.ncols());
        assert_eq!(got.vectors.len(), N);
        for (i, row) in got.vectors.iter().enumerate() {
            let want: Vec<u32> = reference.row(i).iter().map(|x| x.to_bits()).collect();
            let have: Vec<u32> = row.iter().map(|x| x.to_bits()).collect();
            assert_eq!(
                have, want,
                "{name}: image {i} differs from `patchmix embed`"
            );
        }
        // One image as raw bytes equals `patchmix embed` of a folder holding only it.
        let single = f.dir.path().join(format!("single-{name}/c"));
        std::fs::create_dir_all(&single).unwrap();
        let first = f.folder.join(ds.item_id(0));
        std::fs::copy(&first, single.join("x.png")).unwrap();
        let reference = cli_embed(
            single.parent().unwrap(),
            name,
            &f.dir.path().join(format!("single-{name}.safetensors")),
        );
        let r = post(
            &format!("{url}/v1/embed"),
            "image/png",
            std::fs::read(&first).unwrap(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let got: Embedded = r.json().await.unwrap();
        let want: Vec<u32> = reference.row(0).iter().map(|x| x.to_bits()).collect();
        let have: Vec<u32> = got.vectors[0].iter().map(|x| x.to_bits()).collect();
        assert_eq!(
            have, want,
            "{name}: a raw PNG differs from `patchmix embed`"
        );
        server.shutdown().await.unwrap();
    }
}

fn cli_search(query: &Path, k: usize, label: Option<&str>) -> Vec<Hit> {
    let f = fixture();
    let k = k.to_string();
    let mut args = vec![
        "search",
        "--json",
        "--index",
        s(&f.gallery),
        "--model",
        s(&f.model),
        "--image",
        s(query),
        "--k",
        &k,
    ];
    if let Some(l) = label {
        args.extend_from_slice(&["--label", l]);
    }
    serde_json::from_str::<Results>(&ok(&args)).unwrap().results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_equals_patchmix_search_for_images_and_vectors() {
    let f = fixture();
    let query = f.dir.path().join("query.png");
    std::fs::write(&query, mnist_png(100)).unwrap();
    let (server, url) = start(ServeConfig::default(), Runtime::Tract, &f.gallery).await;
    for (k, label) in [(5, None), (N, None), (3, Some("7"))] {
        let want = cli_search(&query, k, label);
        assert_eq!(want.len(), k);
        let mut endpoint = format!("{url}/v1/search?k={k}");
        if let Some(l) = label {
            endpoint.push_str(&format!("&label={l}"));
        }
        let r = post(&endpoint, "image/png", std::fs::read(&query).unwrap()).await;
        assert_eq!(r.status(), StatusCode::OK);
        let got: Results = r.json().await.unwrap();
        assert_eq!(got.results, want, "k = {k}, label {label:?}");
        if let Some(l) = label {
            assert!(got.results.iter().all(|h| h.label == l));
        }
    }
    // The query's features as a JSON vector give the same neighbours.
    let r = post(
        &format!("{url}/v1/embed"),
        "image/png",
        std::fs::read(&query).unwrap(),
    )
    .await;
    let v: Embedded = r.json().await.unwrap();
    let r = post_json(
        &format!("{url}/v1/search?k=5"),
        &serde_json::json!({ "vector": v.vectors[0] }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let got: Results = r.json().await.unwrap();
    assert_eq!(got.results, cli_search(&query, 5, None));
    // Without k: 10.
    let r = post(
        &format!("{url}/v1/search"),
        "image/png",
        std::fs::read(&query).unwrap(),
    )
    .await;
    assert_eq!(r.json::<Results>().await.unwrap().results.len(), 10);
    server.shutdown().await.unwrap();
}

/// A PNG whose header announces `side`×`side` pixels (the data of a 1×1 image follows):
/// decoding it would allocate `3·side²` bytes.
fn bomb_png(side: u32) -> Vec<u8> {
    let mut bytes = png(&image::RgbImage::new(1, 1));
    // IHDR: 8-byte signature, length (4), "IHDR" (4), width (4), height (4), … CRC after 13.
    bytes[16..20].copy_from_slice(&side.to_be_bytes());
    bytes[20..24].copy_from_slice(&side.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_4xx_and_a_json_error_naming_it() {
    let f = fixture();
    let config = ServeConfig {
        max_body_bytes: 200_000,
        image_limits: ImageLimits {
            max_pixels: 300 * 300,
            max_side: 4096,
        },
        ..ServeConfig::default()
    };
    // A copy: a wrong status here could mean an item was added.
    let path = gallery_copy("bad-input.pmx");
    let (server, url) = start(config, Runtime::Tract, &path).await;
    let digit = mnist_png(100);
    let mut truncated = digit.clone();
    truncated.truncate(digit.len() / 2);
    let big = png(&image::RgbImage::new(400, 400));
    let json = |v: serde_json::Value| serde_json::to_vec(&v).unwrap();
    let g = Gallery::load(&f.gallery, AnnLoad::Skip).unwrap();
    let (dim, taken) = (g.dim(), g.ids()[3].clone());
    let dim_text = format!("{dim}");
    // (what, path, content type, body, status, what the error names)
    type Case<'a> = (&'a str, &'a str, &'a str, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "non-image",
            "/v1/search",
            "image/png",
            b"hello".to_vec(),
            400,
            "not a PNG or JPEG",
        ),
        (
            "truncated PNG",
            "/v1/search",
            "image/png",
            truncated.clone(),
            400,
            "cannot decode the PNG",
        ),
        (
            "truncated PNG (embed)",
            "/v1/embed",
            "image/png",
            truncated,
            400,
            "cannot decode the PNG",
        ),
        (
            "bomb header",
            "/v1/search",
            "image/png",
            bomb_png(100_000),
            413,
            "100000×100000",
        ),
        (
            "bomb header, cut after it",
            "/v1/embed",
            "image/png",
            bomb_png(100_000)[..33].to_vec(),
            413,
            "at most 90000 pixels",
        ),
        (
            "too many pixels",
            "/v1/embed",
            "image/png",
            big,
            413,
            "400×400",
        ),
        (
            "wrong dimension",
            "/v1/search",
            "application/json",
            json(serde_json::json!({"vector": [1.0, 2.0, 3.0]})),
            400,
            &dim_text,
        ),
        (
            "k = 0",
            "/v1/search?k=0",
            "image/png",
            digit.clone(),
            400,
            "k = 0",
        ),
        (
            "k above the gallery",
            "/v1/search?k=41",
            "image/png",
            digit.clone(),
            400,
            "only 40 items",
        ),
        (
            "k above a label",
            "/v1/search?k=30&label=1",
            "image/png",
            digit.clone(),
            400,
            "items of label",
        ),
        (
            "k not a number",
            "/v1/search?k=ten",
            "image/png",
            digit.clone(),
            400,
            "query string",
        ),
        (
            "unknown label",
            "/v1/search?label=cat",
            "image/png",
            digit.clone(),
            400,
            "unknown label \"cat\"",
        ),
        (
            "bad JSON",
            "/v1/search",
            "application/json",
            b"{\"vector\": [1,".to_vec(),
            400,
            "bad JSON",
        ),
        (
            "JSON of the wrong shape",
            "/v1/embed",
            "application/json",
            json(serde_json::json!({"vector": [1.0]})),
            400,
            "images",
        ),
        (
            "bad base64",
            "/v1/embed",
            "application/json",
            json(serde_json::json!({"images": ["!!"]})),
            400,
            "images[0]: not base64",
        ),
        (
            "a non-image in a batch",
            "/v1/embed",
            "application/json",
            json(serde_json::json!({"images": [b64(&digit), b64(b"zz")]})),
            400,
            "images[1]: not a PNG",
        ),
        (
            "empty batch",
            "/v1/embed",
            "application/json",
            json(serde_json::json!({"images": []})),
            400,
            "empty",
        ),
        (
            "wrong content type",
            "/v1/search",
            "text/plain",
            digit.clone(),
            415,
            "text/plain",
        ),
        (
            "body too large",
            "/v1/embed",
            "image/png",
            vec![0u8; 300_000],
            413,
            "200000 bytes",
        ),
        (
            "index: not JSON",
            "/v1/index",
            "image/png",
            digit.clone(),
            415,
            "application/json",
        ),
        (
            "index: duplicate id",
            "/v1/index",
            "application/json",
            json(serde_json::json!({"items": [{"id": taken, "label": "0", "image": b64(&digit)}]})),
            409,
            &taken,
        ),
        (
            "index: empty id",
            "/v1/index",
            "application/json",
            json(serde_json::json!({"items": [{"id": "", "label": "0", "image": b64(&digit)}]})),
            400,
            "id is empty",
        ),
        (
            "unknown path",
            "/v1/nothing",
            "image/png",
            digit.clone(),
            404,
            "no such endpoint",
        ),
    ];
    for (what, path, ct, body, status, needle) in cases {
        let r = post(&format!("{url}{path}"), ct, body).await;
        assert_eq!(r.status().as_u16(), status, "{what}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{what}"
        );
        let e: serde_json::Value = r.json().await.unwrap();
        let msg = e["error"].as_str().unwrap_or_else(|| panic!("{what}: {e}"));
        assert!(
            msg.contains(needle),
            "{what}: {msg:?} should name {needle:?}"
        );
    }
    // No Content-Type at all; a GET on a POST endpoint.
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/embed"))
        .body(digit.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = reqwest::get(format!("{url}/v1/search")).await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    // The server is still well, and it never answered 5xx.
    let r = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let metrics = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("patchmix_requests_total{endpoint=\"/v1/search\",status=\"400\"}"));
    assert!(!metrics.contains("status=\"5"), "{metrics}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_added_through_v1_index_survive_a_restart() {
    let path = gallery_copy("added.pmx");
    let (server, url) = start(ServeConfig::default(), Runtime::Tract, &path).await;
    let (a, b) = (mnist_png(200), mnist_png(201));
    let r = post_json(
        &format!("{url}/v1/index"),
        &serde_json::json!({"items": [
            {"id": "new-a", "label": "7", "image": b64(&a)},
            {"id": "new-b", "label": "letters", "image": b64(&b)},
        ]}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let added: serde_json::Value = r.json().await.unwrap();
    assert_eq!(added, serde_json::json!({"added": 2, "total": N + 2}));
    let top = |results: Results| {
        let h = &results.results[0];
        (h.id.clone(), h.label.clone(), h.score)
    };
    let search = |url: String, body: Vec<u8>| async move {
        let r = post(&format!("{url}/v1/search?k=1"), "image/png", body).await;
        assert_eq!(r.status(), StatusCode::OK);
        top(r.json::<Results>().await.unwrap())
    };
    let (id, label, score) = search(url.clone(), b.clone()).await;
    assert_eq!((id.as_str(), label.as_str()), ("new-b", "letters"));
    assert!(score > 0.9999, "{score}");
    // The same id again is refused and changes nothing.
    let r = post_json(
        &format!("{url}/v1/index"),
        &serde_json::json!({"items": [{"id": "new-a", "label": "7", "image": b64(&b)}]}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    server.shutdown().await.unwrap();

    // A new server on the file finds them.
    let (server, url) = start(ServeConfig::default(), Runtime::Tract, &path).await;
    let health: serde_json::Value = reqwest::get(format!("{url}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["items"], N + 2);
    assert_eq!(search(url.clone(), a).await.0, "new-a");
    assert_eq!(search(url.clone(), b).await.0, "new-b");
    server.shutdown().await.unwrap();
    // And so does the CLI.
    let info: serde_json::Value =
        serde_json::from_str(&ok(&["index", "info", "--json", "--index", s(&path)])).unwrap();
    assert_eq!(info["items"], N + 2);
    assert!(
        info["classes"]
            .as_array()
            .unwrap()
            .contains(&"letters".into())
    );
}

/// An encoder of the fixture's shape whose calls each wait for a token: the test decides
/// when the encoder is busy.
struct Gated {
    gate: std::sync::mpsc::Receiver<()>,
    dim: usize,
}

impl Embed for Gated {
    fn embed(&mut self, images: ArrayView4<'_, f32>) -> Result<Array2<f32>, RuntimeError> {
        self.gate.recv().map_err(|_| RuntimeError::Backend {
            runtime: "test",
            message: "gate closed".into(),
        })?;
        Ok(Array2::from_elem((images.shape()[0], self.dim), 1.0))
    }
    fn image_size(&self) -> usize {
        28
    }
}

async fn metric(url: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

async fn wait_for(url: &str, name: &str, value: f64) {
    for _ in 0..2000 {
        if metric(url, name).await == value {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{name} never reached {value}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after_and_shutdown_finishes_requests_in_flight() {
    let f = fixture();
    let dim = Gallery::load(&f.gallery, AnnLoad::Skip).unwrap().dim();
    let (open, gate) = std::sync::mpsc::channel();
    let config = ServeConfig {
        batch: BatchConfig {
            max_batch: 1,
            max_wait: Duration::ZERO,
            queue: 1,
        },
        ..ServeConfig::default()
    };
    let (server, url) = start_with(config, Box::new(Gated { gate, dim }), &f.gallery).await;
    let embed = |url: String| async move {
        post(&format!("{url}/v1/embed"), "image/png", mnist_png(5))
            .await
            .status()
    };
    // One request in the encoder, one in the queue of one...
    let first = tokio::spawn(embed(url.clone()));
    wait_for(&url, "patchmix_batch_size_count", 1.0).await;
    let second = tokio::spawn(embed(url.clone()));
    wait_for(&url, "patchmix_queue_depth", 1.0).await;
    // ...so the third is refused at once.
    let r = post(&format!("{url}/v1/embed"), "image/png", mnist_png(6)).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "1");
    let e: serde_json::Value = r.json().await.unwrap();
    assert!(
        e["error"].as_str().unwrap().contains("queue is full"),
        "{e}"
    );
    // Shutdown while two requests are in flight: both are answered, then it stops.
    let stopping = tokio::spawn(server.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !stopping.is_finished(),
        "shutdown must wait for the requests in flight"
    );
    open.send(()).unwrap();
    open.send(()).unwrap();
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    assert_eq!(second.await.unwrap(), StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown finishes")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_encoder_calls() {
    let f = fixture();
    let config = ServeConfig {
        batch: BatchConfig {
            max_batch: 16,
            max_wait: Duration::from_millis(500),
            queue: 64,
        },
        ..ServeConfig::default()
    };
    let (server, url) = start(config, Runtime::Tract, &f.gallery).await;
    let requests = 8;
    // The images first, so that the requests leave together.
    let images: Vec<Vec<u8>> = (0..requests).map(mnist_png).collect();
    let tasks: Vec<_> = images
        .into_iter()
        .map(|png| {
            let url = url.clone();
            tokio::spawn(async move {
                post(&format!("{url}/v1/embed"), "image/png", png)
                    .await
                    .status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let calls = metric(&url, "patchmix_batch_size_count").await;
    let images = metric(&url, "patchmix_batch_size_sum").await;
    let singles = metric(&url, "patchmix_batch_size_bucket{le=\"1\"}").await;
    assert_eq!(images, requests as f64);
    assert!(
        calls < requests as f64,
        "{calls} encoder calls for {requests} requests"
    );
    assert!(singles < calls, "some call held more than one image");
    assert_eq!(
        metric(
            &url,
            "patchmix_requests_total{endpoint=\"/v1/embed\",status=\"200\"}"
        )
        .await,
        requests as f64
    );
    server.shutdown().await.unwrap();
}

#[test]
fn the_binary_serves_until_sigterm_then_exits_cleanly() {
    use std::io::{BufRead, BufReader};
    let f = fixture();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_patchmix"))
        .args([
            "serve",
            "--model",
            s(&f.model),
            "--index",
            s(&f.gallery),
            "--addr",
            "127.0.0.1:0",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    /// Kills the server if the test fails before it is stopped.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut child = KillOnDrop(child);
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let health: serde_json::Value = rt.block_on(async {
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(health["items"], N);
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(rest.contains("shutting down"), "{rest}");
}

#[test]
fn the_binary_refuses_another_encoder_and_bad_flags_with_one_line() {
    let f = fixture();
    let other = export_random(f.dir.path(), "other.onnx", "4");
    let serve = |model: &Path, extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--model",
            s(model),
            "--index",
            s(&f.gallery),
            "--addr",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        error_line(&args)
    };
    let e = serve(&other, &[]);
    assert!(e.contains("--model") && e.contains("other.onnx"), "{e}");
    let e = serve(&f.model, &["--max-batch", "0"]);
    assert!(e.contains("--max-batch"), "{e}");
    let e = serve(&f.model, &["--ann"]);
    assert!(e.contains("--ann") && e.contains("no HNSW graph"), "{e}");
}

#[test]
fn bench_serve_reports_both_modes_without_errors() {
    let f = fixture();
    let out = ok(&[
        "bench",
        "serve",
        "--model",
        s(&f.model),
        "--index",
        s(&f.gallery),
        "--data",
        s(&f.folder),
        "--images",
        "8",
        "--clients",
        "4",
        "--seconds",
        "0.5",
        "--rounds",
        "2",
        "--max-wait-ms",
        "20",
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    for mode in ["dynamic", "batch1"] {
        let m = &r[mode];
        assert_eq!(m["errors"], 0, "{mode}: {m}");
        assert!(m["requests"].as_u64().unwrap() > 0, "{mode}: {m}");
        assert!(m["p50_ms"].as_f64().unwrap() <= m["p99_ms"].as_f64().unwrap());
    }
    assert_eq!(r["batch1"]["max_batch"], 1);
    assert_eq!(r["batch1"]["mean_batch"], 1.0);
    assert!(r["dynamic"]["mean_batch"].as_f64().unwrap() >= 1.0);
    let ratio = r["dynamic"]["requests_per_s"].as_f64().unwrap()
        / r["batch1"]["requests_per_s"].as_f64().unwrap();
    assert!((r["speedup"].as_f64().unwrap() - ratio).abs() < 1e-9);
}
