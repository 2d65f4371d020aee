//! A gallery fixture for the retrieval tests (`cli_index`, `serve`): a random-init encoder
//! and an ImageFolder of real MNIST digits. Included with `#[path]`, next to `common/cli.rs`.

use patchmix_export::data::{Dataset, DatasetRef};
use std::path::{Path, PathBuf};

use super::cli::{ok, s};

/// A random-init vit-tiny (2 blocks) for 28×28 images.
pub fn export_random(dir: &Path, name: &str, seed: &str) -> PathBuf {
    let out = dir.join(name);
    ok(&[
        "export",
        "--init",
        "random",
        "--seed",
        seed,
        "--preset",
        "vit-tiny",
        "--img",
        "28",
        "--patch",
        "7",
        "--depth",
        "2",
        "--out",
        s(&out),
    ]);
    out
}

/// Writes MNIST test images `from..from+n` as `root/<digit>/<i>.png`.
pub fn mnist_folder(root: &Path, from: usize, n: usize) -> PathBuf {
    let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist10k:test");
    let ds = Dataset::open(&mnist.to_str().unwrap().parse::<DatasetRef>().unwrap()).unwrap();
    for i in from..from + n {
        let d = root.join(ds.label(i).to_string());
        std::fs::create_dir_all(&d).unwrap();
        ds.image(i)
            .unwrap()
            .save(d.join(format!("{i}.png")))
            .unwrap();
    }
    root.to_path_buf()
}
