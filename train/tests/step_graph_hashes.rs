//! The compiled step graphs are pinned byte for byte: every built-in preset in every precision
//! (native and CPU-emulated half products), and the benchmark and test configurations in both
//! frames, serialised to ONNX and hashed with SHA-256.
//!
//! A refactor of the step compiler, the autodiff or the ONNX writer must leave these hashes
//! unchanged. A change that means to alter the compiled step updates the table below in the same
//! commit and says why; the failure message prints every hash that moved.

use patchmix_export::onnx::to_onnx_bytes;
use patchmix_export::vit::VitConfig;
use patchmix_train::pretrain::{PRESETS, PretrainConfig};
use patchmix_train::step::{
    Frame, LocalCrops, Precision, PreparedBatch, StepConfig, TargetSmoothing, VirtualRanks,
    build_step_with, prepare_batch_on_ranks, prepare_batch_with_local,
};
use sha2::{Digest, Sha256};

/// (case name, SHA-256 of the ONNX bytes).
const EXPECTED: &[(&str, &str)] = &[
    (
        "preset/demo/fp32",
        "8166ee96d69dd4ce69ddba945ac678d87254f349ed49bece0ce2ad09850fcf2f",
    ),
    (
        "preset/demo/bf16",
        "360f8e167ab058e4707f57a80697644206625a9ad77765af372aaed9557a64fb",
    ),
    (
        "preset/demo/bf16-emulated",
        "63eb350b099851f4df7de42fcbb5d571baaf96c6d4e21e1bad6e6f2c107e28f2",
    ),
    (
        "preset/demo/fp16",
        "b87afe6232a5bff71b45d1154f48c0560a94a68b9db7319916660022831e94d1",
    ),
    (
        "preset/demo/fp16-emulated",
        "f6ac397fa6c37f2edeea81ca1c86079f351b93c5597b5abcdc0045f221d1e7de",
    ),
    (
        "preset/cifar10-vit-tiny/fp32",
        "cfaee45604b33c875c8221e9349933ec465d6149df0fb361cbfb66e8d6503f0a",
    ),
    (
        "preset/cifar10-vit-tiny/bf16",
        "ff44fffd0693aed84e26642511a23fce7614990d3b2f4711cd76341f4045aebd",
    ),
    (
        "preset/cifar10-vit-tiny/bf16-emulated",
        "cf9500c35a93f01db86fd199925273f9696f104bdb953880641d14dc63767334",
    ),
    (
        "preset/cifar10-vit-tiny/fp16",
        "34ef73667433dc939e4953b83c983392293c48ce1e18a81d07a1dae5f51d2c0a",
    ),
    (
        "preset/cifar10-vit-tiny/fp16-emulated",
        "4947645fc2749e3f5bbd700948d159c315582dbeba52b84605bb0c0d9ea8c005",
    ),
    (
        "preset/cifar100-vit-tiny/fp32",
        "cfaee45604b33c875c8221e9349933ec465d6149df0fb361cbfb66e8d6503f0a",
    ),
    (
        "preset/cifar100-vit-tiny/bf16",
        "ff44fffd0693aed84e26642511a23fce7614990d3b2f4711cd76341f4045aebd",
    ),
    (
        "preset/cifar100-vit-tiny/bf16-emulated",
        "cf9500c35a93f01db86fd199925273f9696f104bdb953880641d14dc63767334",
    ),
    (
        "preset/cifar100-vit-tiny/fp16",
        "34ef73667433dc939e4953b83c983392293c48ce1e18a81d07a1dae5f51d2c0a",
    ),
    (
        "preset/cifar100-vit-tiny/fp16-emulated",
        "4947645fc2749e3f5bbd700948d159c315582dbeba52b84605bb0c0d9ea8c005",
    ),
    (
        "preset/cifar10-vit-small/fp32",
        "3c537858172500ab0522cd55927f5ebec339968f429c6b8b102826b2e39d1fab",
    ),
    (
        "preset/cifar10-vit-small/bf16",
        "3b45b9173a37edae28c2c895ff8957b14166b56dacd74d7333c5892b5e971427",
    ),
    (
        "preset/cifar10-vit-small/bf16-emulated",
        "aa0daafa907447f47eb1a2086ae66e231bedfc0f4567c487a00e4d57309064f6",
    ),
    (
        "preset/cifar10-vit-small/fp16",
        "eff411ddf3421d05a9e89add551cc4a9c79f35781084d87d1edd6f9d87d72aa0",
    ),
    (
        "preset/cifar10-vit-small/fp16-emulated",
        "a1097d31b4c94cb83f14f66f49645b3ed1f1f05120fb80f3f5c249ccf70ab98b",
    ),
    (
        "preset/cifar10-vit-base/fp32",
        "334be0ec2eab28671b766842774deda41d55f745b785e50c9786f5b27ea2a093",
    ),
    (
        "preset/cifar10-vit-base/bf16",
        "59ad85bb505782a18794bfbc69e35b86125c40af44d8a873b5120485fb8a30e1",
    ),
    (
        "preset/cifar10-vit-base/bf16-emulated",
        "4cdf5ea068ad0a551a899d77c5ce401ce5eff3fad0ec81ed942f54cfdfc6ca98",
    ),
    (
        "preset/cifar10-vit-base/fp16",
        "faf5cb299847aa0d54ff616640c43bd3ed95371a576bf8221633d507dc73d626",
    ),
    (
        "preset/cifar10-vit-base/fp16-emulated",
        "5d51d2207d3856c77e55d12e85c7bb5c3aa89260afee0e6760e215918fe5afe5",
    ),
    (
        "preset/imagenet-vit-small/fp32",
        "d7adae0bfc62c88969eafee7b46b4b04d3af58a98e526e6e195cbdcd368833a5",
    ),
    (
        "preset/imagenet-vit-small/bf16",
        "43dc0117f95d1980546f275d89b589bbeba5dd795a52564c54f179191b84c55c",
    ),
    (
        "preset/imagenet-vit-small/bf16-emulated",
        "4fa80e84c7a44a33fe9aa22cabd323f89b251c37c7fa1d76ea7fd3637b1f43b5",
    ),
    (
        "preset/imagenet-vit-small/fp16",
        "81f7b0f69085240b91c4071a854f3488159de05ae30b91daff7abffdb6fc6523",
    ),
    (
        "preset/imagenet-vit-small/fp16-emulated",
        "e17a53cc341ba271e1a60c4f80b3526cf77df2b0da1440ce92fa6521bf2ec572",
    ),
    (
        "preset/imagenet-vit-base/fp32",
        "556d2a2f8078f0b5a55f7a685908c8abdc8709d71f8d8ebcb544120817a5d32d",
    ),
    (
        "preset/imagenet-vit-base/bf16",
        "d6db2dbe8e10ee4b1c351ce30f4118eab40c92062c54b3161379dd09c54d6709",
    ),
    (
        "preset/imagenet-vit-base/bf16-emulated",
        "a0a7cfbfd10b414428d90ff30e1748103f817daf9dd2b2864c0127b133367ba9",
    ),
    (
        "preset/imagenet-vit-base/fp16",
        "87a76405b0d642e6076dd7aac9c1b010f63c56f4c0a2ae042494640f62e6905f",
    ),
    (
        "preset/imagenet-vit-base/fp16-emulated",
        "d85dc174f2b10ec4ad503fe0eee5293b334381e718997bf86e69875abedf01a8",
    ),
    (
        "preset/tiny-test/fp32",
        "bbb8a5be4c29554a00988397c1a2bd04260b40a206e1c99e9ff1f35deafe7c6c",
    ),
    (
        "preset/tiny-test/bf16",
        "711816466abac5652b19be84d33ab556c1a78217e679afe4c51ec53cb22a81cd",
    ),
    (
        "preset/tiny-test/bf16-emulated",
        "ec0f7c258a37b43ba123c7059a4071da8bb30ab63c230710cebefbf707895f55",
    ),
    (
        "preset/tiny-test/fp16",
        "9010e6bb07932ddf81b2528ed98c82c2600e9373e2be3d5ceab518d090ebcd8f",
    ),
    (
        "preset/tiny-test/fp16-emulated",
        "f4549804e182697c7eb9c970c48e42a63e7a030657aec719d0e62b4854c75b87",
    ),
    (
        "tiny/no-momentum/fp32",
        "9d5e47f76a43096a88f722b64e571245337f6b6ae0a7901b5e3d426bb22edd10",
    ),
    (
        "tiny/no-momentum/bf16",
        "6852a2bd374b4ca8499e839f7383bcd9ba7652c93aaa908cb2faae8d6c06c822",
    ),
    (
        "tiny/no-momentum/bf16-emulated",
        "d3394c7bc149a2b327e8f9b566bd787f6e9a372d82d93c232b39cfd5e273b6eb",
    ),
    (
        "tiny/no-momentum/fp16",
        "7919dc567cc1170af8882efb7b49a40e69d9c12b31c92334be3380f873f73b22",
    ),
    (
        "tiny/no-momentum/fp16-emulated",
        "1539c5eac4b20ab353b954e48ad6205a12e6ef525c9e57f05b4fdb2f7ff1de51",
    ),
    (
        "tiny/no-momentum/drop-path/fp32",
        "bbb8a5be4c29554a00988397c1a2bd04260b40a206e1c99e9ff1f35deafe7c6c",
    ),
    (
        "tiny/no-momentum/drop-path/bf16",
        "711816466abac5652b19be84d33ab556c1a78217e679afe4c51ec53cb22a81cd",
    ),
    (
        "tiny/no-momentum/drop-path/bf16-emulated",
        "ec0f7c258a37b43ba123c7059a4071da8bb30ab63c230710cebefbf707895f55",
    ),
    (
        "tiny/no-momentum/drop-path/fp16",
        "9010e6bb07932ddf81b2528ed98c82c2600e9373e2be3d5ceab518d090ebcd8f",
    ),
    (
        "tiny/no-momentum/drop-path/fp16-emulated",
        "f4549804e182697c7eb9c970c48e42a63e7a030657aec719d0e62b4854c75b87",
    ),
    (
        "tiny/no-momentum/local-crops/fp32",
        "f1b44b5b2e939b0b52bd3e11d5330ec3f0b69c7dc3907e19e0ca72918b0c79a3",
    ),
    (
        "tiny/no-momentum/local-crops/bf16",
        "a94eb48bae05becb4aa1662df7a9ed507a1bec84233565f3bd5a37ca4a31eaed",
    ),
    (
        "tiny/no-momentum/local-crops/bf16-emulated",
        "56c752d48a0b87ea1200659a127dd31df56c1d0436aec9de9233e7e27db5aad3",
    ),
    (
        "tiny/no-momentum/local-crops/fp16",
        "788d46f4cf0a559ecaa6cd40d2d488fd5e5a5404d5906012ff994c25bd9d84ad",
    ),
    (
        "tiny/no-momentum/local-crops/fp16-emulated",
        "6030904e89398b440c6fc5d24ebf279a8b40d59f0d1d4a4b45a0a30c2b81fa3a",
    ),
    (
        "small/no-momentum/fp32",
        "5f314a8017f81e5834586d80f7314d5e969825485c60abee4b0c09980b74c7f5",
    ),
    (
        "small/no-momentum/bf16",
        "93007a450945b34bf07f8e0fb52f5b0ae6ea4b4c4d4b73538f6b6440a6c1779b",
    ),
    (
        "small/no-momentum/bf16-emulated",
        "d4c7b44f40adf305c10cfbdb15c4fb10327deb07cc52a8bf56d2a076fd1ca2d0",
    ),
    (
        "small/no-momentum/fp16",
        "e671633d3d0ee59b10daa3ee96df4855470209bc4328744776ca18c27c4db705",
    ),
    (
        "small/no-momentum/fp16-emulated",
        "5f692cd87e0abcc063521a72be1899951f147f165a5ab61097f7321b0932eae7",
    ),
    (
        "tiny/momentum/fp32",
        "a269283e8d9d49438c93f5cf2006b658dace2ec11d55cc42a3180d3b9a2e66aa",
    ),
    (
        "tiny/momentum/bf16",
        "c44d65aac9da5854a4d699b25ed8942b50dd32631d51d04ce0ddbd039b8d6cbb",
    ),
    (
        "tiny/momentum/bf16-emulated",
        "f15e17126d7add1161bc03e18ea24bb6f2bfa8db2b46c846d79ca9e18944ae19",
    ),
    (
        "tiny/momentum/fp16",
        "cd0acf2fb4cfa4c37711632538141bd11fea3ecab3b879c8c65e8c9bb3a01b94",
    ),
    (
        "tiny/momentum/fp16-emulated",
        "580de9fc7ee9aa862bc0d2741a3a75fbe22a53fc3264c5fa785bbc48b8f5b07a",
    ),
    (
        "tiny/momentum/drop-path/fp32",
        "0205c0852b859485c9c858c92a1b9c4095fd7a38837a28a37d8548fda5f318be",
    ),
    (
        "tiny/momentum/drop-path/bf16",
        "07c1cdc08902e1f53f39c501255f636317bc89f2397a604ee8127f246bd81841",
    ),
    (
        "tiny/momentum/drop-path/bf16-emulated",
        "2f0e87d18477f75c8dd112cc3d633b06aae1dcdeb4fc0ae7f788f8de3bfb2aba",
    ),
    (
        "tiny/momentum/drop-path/fp16",
        "52977bc7ef4bc7e65019fa4c91fb5a36d9390a223d6c28fa5aa9eb224e875003",
    ),
    (
        "tiny/momentum/drop-path/fp16-emulated",
        "c17354020fe46518ecc4590bbd4e5f4eec0375995ed5c721adf4d654d8adfcbb",
    ),
    (
        "tiny/momentum/local-crops/fp32",
        "6df8d1d693bc7fe3915e9dbc4edec1ed0ec40f672791a8397f586c0807de4317",
    ),
    (
        "tiny/momentum/local-crops/bf16",
        "d6b5b741c86cf0842913c692e14b673d6558b1286577d23f0bbf334222cbb9ad",
    ),
    (
        "tiny/momentum/local-crops/bf16-emulated",
        "9a0ac7299a4243e0d5a6b536215abf1d693e419816243c22edb6abe8e119fa53",
    ),
    (
        "tiny/momentum/local-crops/fp16",
        "b55dfebc2daa517482c11b72bf5ea8dd73e6b25649ba99d2149e22eebf41cf7d",
    ),
    (
        "tiny/momentum/local-crops/fp16-emulated",
        "3ae97ad459afe31580037895e580eb2d32adb3327eaf085612b4831d2cda291d",
    ),
    (
        "small/momentum/fp32",
        "254b72864fc6aed428a83ad8b03e31a33f5929039ef246b31ad1057719b42c55",
    ),
    (
        "small/momentum/bf16",
        "2ae3166eaa0db371af6e4c3826acbb43e5e5f4c05aa36772ae24b28b6145aa1c",
    ),
    (
        "small/momentum/bf16-emulated",
        "a5784937162af191194fc10b57e220a0be7a2db50eeb3f0ed2693d05e46616ee",
    ),
    (
        "small/momentum/fp16",
        "d0fa71d4a49586287cb91934bae4938b37e2a93d1d885374c2a5a575a0266efc",
    ),
    (
        "small/momentum/fp16-emulated",
        "7e29e13adfae7f6866ebd02e61bc94d442acb67844f18b8d89cf0709dca44f8b",
    ),
    (
        "vit-t4/fp32",
        "4c4ea4bf4ac4932c1d1cb733c796c1b4944ce114e27e04dc3db00f5d3d3aa25c",
    ),
    (
        "vit-t4/bf16",
        "bccee0a7a0a148f5287b8bc2089a633c1a1947833cbd6a9a47807d5c8570f0ed",
    ),
    (
        "vit-t4/bf16-emulated",
        "01589caab03c3c93c6d810860870b37c7d7fdffaaf9312012a0838d81bf9c81c",
    ),
    (
        "vit-t4/fp16",
        "218841951ac7ea6a94b3b9fa5f57daad8860a8eccb5d2ce64037ad5647ebf0e2",
    ),
    (
        "vit-t4/fp16-emulated",
        "5f5a9048aa8692bb5eb22a9eaf6c279d5959a07d83af25214931803944386423",
    ),
    (
        "vit-t2/fp32",
        "b1a850965578d110f920fc1880280c9059f39419db1223264aec5551bf3b0515",
    ),
    (
        "vit-t2/bf16",
        "cc7665660e20de589117c0d29b9feceb817593a31278fef91db035e6f5aaf59c",
    ),
    (
        "vit-t2/bf16-emulated",
        "decb26e149bc76e8cdc62006c7f3a02adcee3bd5d15a2f20daf38fa8c0cf2e38",
    ),
    (
        "vit-t2/fp16",
        "bd9f7cffde8ecf1049497e60c54c7ad3a849dc2ffaca3b75b8d0675835ad9175",
    ),
    (
        "vit-t2/fp16-emulated",
        "1f20d054882804c432a166ed7d8fd352dbc2d09b1b68a157263a0e7a991d7ab8",
    ),
];

fn hash_of(cfg: &StepConfig, emulate_half: bool) -> String {
    let step = build_step_with(cfg, emulate_half).expect("step builds");
    let bytes = to_onnx_bytes(&step.graph);
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn named(vit: VitConfig, hidden: usize, out: usize, batch: usize, frame: Frame) -> StepConfig {
    StepConfig {
        vit,
        hidden,
        out,
        batch,
        ..StepConfig::tiny(frame, 0.0)
    }
}

fn vit(img: usize, patch: usize, dim: usize, depth: usize, heads: usize) -> VitConfig {
    VitConfig {
        img,
        patch,
        dim,
        depth,
        heads,
    }
}

/// Every configuration whose compiled step is pinned.
fn cases() -> Vec<(String, StepConfig, bool)> {
    let precisions = [
        (Precision::Fp32, "fp32"),
        (Precision::Bf16, "bf16"),
        (Precision::Fp16, "fp16"),
    ];
    let mut bases: Vec<(String, StepConfig)> = PRESETS
        .iter()
        .map(|p| {
            let c = PretrainConfig::preset(p).expect("preset").step_config();
            (format!("preset/{p}"), c.expect("preset step config"))
        })
        .collect();
    for (frame, f) in [
        (Frame::NoMomentum, "no-momentum"),
        (Frame::Momentum, "momentum"),
    ] {
        bases.push((format!("tiny/{f}"), StepConfig::tiny(frame, 0.0)));
        bases.push((format!("tiny/{f}/drop-path"), StepConfig::tiny(frame, 0.3)));
        bases.push((
            format!("tiny/{f}/local-crops"),
            StepConfig {
                local: Some(LocalCrops { count: 2, img: 4 }),
                ..StepConfig::tiny(frame, 0.1)
            },
        ));
        bases.push((
            format!("small/{f}"),
            named(vit(32, 4, 64, 4, 4), 512, 128, 64, frame),
        ));
    }
    bases.push((
        "vit-t4".into(),
        named(vit(32, 4, 192, 12, 3), 4096, 256, 64, Frame::NoMomentum),
    ));
    bases.push((
        "vit-t2".into(),
        named(vit(32, 2, 192, 12, 3), 4096, 256, 512, Frame::NoMomentum),
    ));
    let mut out = Vec::new();
    for (name, base) in bases {
        for (precision, p) in precisions {
            let cfg = StepConfig {
                precision,
                ..base.clone()
            };
            if precision == Precision::Fp32 {
                out.push((format!("{name}/{p}"), cfg, false));
            } else {
                out.push((format!("{name}/{p}"), cfg.clone(), false));
                out.push((format!("{name}/{p}-emulated"), cfg, true));
            }
        }
    }
    out
}

#[test]
fn compiled_step_graphs_are_byte_identical_to_the_pinned_ones() {
    let mut moved = Vec::new();
    let mut seen = Vec::new();
    for (name, cfg, emulate) in cases() {
        let got = hash_of(&cfg, emulate);
        match EXPECTED.iter().find(|(n, _)| *n == name) {
            Some((_, want)) if *want == got => {}
            Some((_, want)) => moved.push(format!("{name}: pinned {want}, now {got}")),
            None => moved.push(format!("{name}: not pinned, now {got}")),
        }
        seen.push(format!("    (\"{name}\", \"{got}\"),"));
    }
    for (n, _) in EXPECTED {
        assert!(
            seen.iter().any(|s| s.contains(&format!("\"{n}\""))),
            "pinned case {n} is no longer built"
        );
    }
    assert!(
        moved.is_empty(),
        "{} compiled step graph(s) changed:\n{}\n\nThe current table:\n{}",
        moved.len(),
        moved.join("\n"),
        seen.join("\n")
    );
}

#[test]
fn compiling_the_same_step_twice_gives_the_same_bytes() {
    let cfg = StepConfig {
        local: Some(LocalCrops { count: 2, img: 4 }),
        precision: Precision::Fp16,
        ..StepConfig::tiny(Frame::Momentum, 0.2)
    };
    assert_eq!(hash_of(&cfg, false), hash_of(&cfg, false));
    // And the hash sees a change: without drop path the step has no mask inputs. (The rate
    // itself is not in the graph: the masks are drawn on the host.)
    let other = StepConfig {
        drop_path: 0.0,
        ..cfg.clone()
    };
    assert_ne!(hash_of(&cfg, false), hash_of(&other, false));
}

/// SHA-256 of one step's host inputs ([`PreparedBatch`]): images, targets, drop-path masks,
/// permutations and local crops, in that order, as little-endian bytes.
fn batch_hash(b: &PreparedBatch) -> String {
    let mut h = Sha256::new();
    let floats = |h: &mut Sha256, v: &[f32]| {
        for x in v {
            h.update(x.to_le_bytes());
        }
    };
    for v in b.images.iter().chain(&b.targets).chain(&b.drop_path) {
        floats(&mut h, v);
    }
    for p in &b.perms {
        for x in p {
            h.update(x.to_le_bytes());
        }
    }
    for v in b.local.iter().flatten() {
        floats(&mut h, v);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The host inputs of one step (PatchMix images, targets, drop-path masks, permutations) for
/// the tiny step in both frames, with drop path, local crops and both smoothings, pinned to
/// the bytes they had before virtual ranks existed: one rank must prepare exactly those.
#[test]
fn one_rank_batch_inputs_are_byte_identical_to_the_pinned_ones() {
    // Computed from the code before virtual ranks existed (commit 619573d).
    const PINNED: &str = "633a598666e8024da7eca4e967ae55b6140e8ee6b4696f563c689bfc8409e1cc";
    let mut h = Sha256::new();
    for (frame, drop_path, local) in [
        (Frame::NoMomentum, 0.0, None),
        (Frame::Momentum, 0.3, Some(LocalCrops { count: 2, img: 4 })),
    ] {
        let cfg = StepConfig {
            local,
            ..StepConfig::tiny(frame, drop_path)
        };
        let n = cfg.batch * 3 * cfg.vit.img * cfg.vit.img;
        let view = |k: f32| (0..n).map(|i| (i as f32 * k).sin()).collect::<Vec<f32>>();
        let crops = local.map(|l| {
            (0..l.count * cfg.batch * 3 * l.img * l.img)
                .map(|i| (i as f32 * 0.3).cos())
                .collect::<Vec<f32>>()
        });
        let smoothing = TargetSmoothing { src: 0.1, mix: 0.2 };
        let b = prepare_batch_with_local(&cfg, view(0.1), view(0.7), crops.clone(), 42, smoothing)
            .expect("prepare");
        h.update(batch_hash(&b).as_bytes());
        let ranks = VirtualRanks::new(1, cfg.batch, cfg.mix).expect("one rank");
        let r = prepare_batch_on_ranks(&cfg, ranks, view(0.1), view(0.7), crops, 42, smoothing)
            .expect("prepare");
        assert_eq!(batch_hash(&r), batch_hash(&b), "virtual_ranks = 1");
    }
    let got: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(got, PINNED, "one rank's batch inputs changed");
}
