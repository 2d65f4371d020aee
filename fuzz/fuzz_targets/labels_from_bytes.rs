//! Soft labels and schedules from arbitrary parameters: errors, never panics; every accepted
//! label buffer has rows summing to 1 and no entry below the off value.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use patchmix_core::{
    LabelSpec, cosine_schedule, fill_mix_to_mix_targets, fill_mix_to_origin_targets,
    fill_origin_targets, momentum_schedule, temperature_schedule,
};

fn labels(u: &mut Unstructured) -> Result<()> {
    let batch = u.int_in_range(0usize..=12)?;
    let world = u.int_in_range(0usize..=4)?;
    let rank = u.int_in_range(0usize..=4)?;
    let smoothing = if u.arbitrary()? {
        u.arbitrary::<f64>()?
    } else {
        f64::from(u.int_in_range(0u8..=100)?) / 100.0
    };
    let mix = if u.arbitrary()? {
        u.arbitrary::<usize>()?
    } else {
        u.int_in_range(0usize..=30)?
    };
    let spec = match LabelSpec::new(batch, world, rank, smoothing) {
        Ok(spec) => spec,
        Err(err) => {
            let _ = err.to_string();
            return Ok(());
        }
    };
    let len = match u.int_in_range(0u8..=9)? {
        0 => spec.len() - 1,
        1 => spec.len() + 1,
        _ => spec.len(),
    };
    let mut out = vec![0.0f64; len];
    let result = match u.int_in_range(0u8..=2)? {
        0 => fill_origin_targets(&spec, &mut out),
        1 => fill_mix_to_origin_targets(&spec, mix, &mut out),
        _ => fill_mix_to_mix_targets(&spec, mix, &mut out),
    };
    if result.is_ok() {
        let n = spec.num_classes();
        let off = spec.off_value();
        for row in out.chunks(n) {
            let sum: f64 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-9, "row sums to {sum}");
            assert!(row.iter().all(|&v| v >= off - 1e-12));
        }
    }
    Ok(())
}

fn schedules(u: &mut Unstructured) -> Result<()> {
    let (a, b, c): (f64, f64, f64) = (u.arbitrary()?, u.arbitrary()?, u.arbitrary()?);
    let (n, w, i): (u64, u64, u64) = (u.arbitrary()?, u.arbitrary()?, u.arbitrary()?);
    let (n, w, i) = if u.arbitrary()? {
        (n % 64, w % 64, i % 64)
    } else {
        (n, w, i)
    };
    if let Ok(v) = cosine_schedule(a, b, n, w, c, i) {
        assert!(v.is_finite());
    }
    let _ = momentum_schedule(a, b, c);
    let _ = temperature_schedule(a, b, w, i);
    if let Ok(m) = momentum_schedule(a.abs() % 1.0, b.abs(), b.abs() + 1.0) {
        assert!(
            (0.0..=1.0).contains(&m),
            "momentum({}, {}, {}) = {m}",
            a.abs() % 1.0,
            b.abs(),
            b.abs() + 1.0
        );
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = labels(&mut u);
    let _ = schedules(&mut u);
});
