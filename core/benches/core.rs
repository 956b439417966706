//! Micro-benchmarks of the core's hot paths: sealing and opening secrets of
//! 1 KiB and 64 KiB, rewrapping a DEK, and one policy decision.
//!
//! Native only (criterion does not run in a browser); on wasm32 this file
//! compiles to an empty `main` so `cargo clippy --all-targets` still passes.

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use core::hint::black_box;

    use base64::{engine::general_purpose::STANDARD, Engine as _};
    use coffer_core::{
        decide, open, rewrap, seal, Action, Binding, CredentialId, Keyring, Principal, Relation,
        Role, TenantId,
    };
    use criterion::{BenchmarkId, Criterion, Throughput};
    use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};

    fn keyring(value: &[(&str, u8)]) -> Keyring {
        let entries: Vec<String> = value
            .iter()
            .map(|(kid, b)| format!("{kid}:{}", STANDARD.encode([*b; 32])))
            .collect();
        Keyring::parse(&entries.join(",")).expect("valid keyring")
    }

    fn binding() -> Binding {
        Binding {
            tenant: TenantId::parse("00000000-0000-4000-8000-000000000001").expect("uuid"),
            credential: CredentialId::parse("cred-00000000-0000-4000-8000-000000000002")
                .expect("uuid"),
            version: 1,
        }
    }

    pub(crate) fn envelope(c: &mut Criterion) {
        let keys = keyring(&[("k1", 1)]);
        let b = binding();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut group = c.benchmark_group("envelope");
        for size in [1024_usize, 64 * 1024] {
            let plaintext = vec![b'x'; size];
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(BenchmarkId::new("seal", size), &plaintext, |bench, pt| {
                bench.iter(|| seal(&keys, &mut rng, &b, black_box(pt)).expect("sealed"));
            });
            let sealed = seal(&keys, &mut rng, &b, &plaintext).expect("sealed");
            group.bench_with_input(BenchmarkId::new("open", size), &sealed, |bench, s| {
                bench.iter(|| {
                    open(&keys, &b, black_box(&s.wrapped_dek), black_box(&s.blob)).expect("opens")
                });
            });
        }
        group.finish();

        let old = keyring(&[("old", 1)]);
        let rotated = keyring(&[("new", 2), ("old", 1)]);
        let sealed = seal(&old, &mut rng, &b, b"{\"k\":\"v\"}").expect("sealed");
        c.bench_function("envelope/rewrap", |bench| {
            bench.iter(|| rewrap(&rotated, &mut rng, &b, black_box(&sealed.wrapped_dek)))
        });
    }

    pub(crate) fn policy(c: &mut Criterion) {
        let home = TenantId::parse("00000000-0000-4000-8000-000000000001").expect("uuid");
        let other = TenantId::parse("00000000-0000-4000-8000-000000000002").expect("uuid");
        let principal =
            Principal::for_test("user-1", home, vec![other], vec![Role::Viewer, Role::User]);
        let shares = [other];
        c.bench_function("policy/decide", |bench| {
            bench.iter(|| {
                let relation = Relation::of(black_box(other), home, &shares);
                decide(
                    &principal,
                    black_box(other),
                    black_box(Action::ReadSecret),
                    Some(relation),
                )
            })
        });
    }
}

#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_group!(benches, native::envelope, native::policy);
#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_main!(benches);

#[cfg(target_arch = "wasm32")]
fn main() {}
