/* Smoke test of the patchmix C ABI: run by core/tests/c_abi.rs, which compares every printed
 * line with the Rust API. Exit status 0 iff every call returned the status it should. */
#include <stdio.h>
#include <string.h>

#include "patchmix.h"

#define B 4
#define GRID 4
#define T (GRID * GRID)
#define MIX 2
#define C 3
#define SIDE 8
#define N_IMG (B * C * SIDE * SIDE)

static int failures = 0;

static void expect(const char *what, int32_t got, int32_t want) {
    if (got != want) {
        fprintf(stderr, "%s: status %d (%s), expected %d\n", what, (int)got,
                patchmix_status_message(got), (int)want);
        failures++;
    }
}

static void print_u32(const char *name, const uint32_t *v, size_t n) {
    printf("%s", name);
    for (size_t i = 0; i < n; i++) printf(" %u", v[i]);
    printf("\n");
}

static void print_f32(const char *name, const float *v, size_t n) {
    printf("%s", name);
    for (size_t i = 0; i < n; i++) printf(" %.9g", (double)v[i]);
    printf("\n");
}

int main(void) {
    uint32_t perm[T], inv[T], source[B * T];
    static float images[N_IMG], mixed[N_IMG];
    float labels[B * B * 2];
    double value;
    char message[128];

    printf("abi %u\n", patchmix_abi_version());

    expect("permutation", patchmix_permutation_from_seed(42, perm, T), PATCHMIX_OK);
    print_u32("perm", perm, T);
    expect("inverse", patchmix_inverse(perm, inv, T), PATCHMIX_OK);
    print_u32("inv", inv, T);
    expect("source", patchmix_source(B, GRID, MIX, perm, T, source, B * T), PATCHMIX_OK);
    print_u32("source", source, B * T);

    for (size_t i = 0; i < N_IMG; i++) images[i] = (float)i * 0.5f;
    expect("apply_nchw", patchmix_apply_nchw_f32(B, GRID, source, B * T, C, SIDE, SIDE, images,
                                                 mixed, N_IMG), PATCHMIX_OK);
    print_f32("mixed", mixed, N_IMG);

    /* world size 2, rank 1: N = 8 columns. */
    expect("origin", patchmix_origin_targets_f32(B, 2, 1, 0.1, labels, B * B * 2), PATCHMIX_OK);
    print_f32("origin", labels, B * B * 2);
    expect("mix_to_origin",
           patchmix_mix_to_origin_targets_f32(B, MIX, 2, 1, 0.1, labels, B * B * 2), PATCHMIX_OK);
    print_f32("soft_target", labels, B * B * 2);
    expect("mix_to_mix",
           patchmix_mix_to_mix_targets_f32(B, MIX, 2, 1, 0.1, labels, B * B * 2), PATCHMIX_OK);
    print_f32("soft_mix_target", labels, B * B * 2);

    expect("cosine", patchmix_cosine_schedule(1e-3, 1e-5, 100, 10, 0.0, 37, &value), PATCHMIX_OK);
    printf("cosine %.17g\n", value);
    expect("momentum", patchmix_momentum_schedule(0.99, 12.5, 100.0, &value), PATCHMIX_OK);
    printf("momentum %.17g\n", value);
    expect("temperature", patchmix_temperature_schedule(0.1, 0.2, 30, 7, &value), PATCHMIX_OK);
    printf("temperature %.17g\n", value);

    /* Errors: a status code and a message naming the parameter, never a crash. */
    int32_t status = patchmix_source(B, 2, 5, perm, 4, source, B * 4);
    expect("mix > T", status, PATCHMIX_E_MIX_EXCEEDS_TOKENS);
    size_t len = patchmix_last_error_message(message, sizeof message);
    printf("error %d %zu %s | %s\n", (int)status, len, message, patchmix_status_message(status));
    perm[1] = perm[0];
    status = patchmix_source(B, GRID, MIX, perm, T, source, B * T);
    expect("duplicate", status, PATCHMIX_E_PERMUTATION_DUPLICATE);
    status = patchmix_apply_nchw_f32(B, 3, source, B * 9, C, SIDE, SIDE, images, mixed, N_IMG);
    expect("grid 3 on 8x8", status, PATCHMIX_E_GRID_DOES_NOT_DIVIDE);
    patchmix_last_error_message(message, sizeof message);
    printf("error %d %s\n", (int)status, message);
    status = patchmix_source(B, GRID, MIX, NULL, T, source, B * T);
    expect("null perm", status, PATCHMIX_E_NULL_POINTER);
    status = patchmix_cosine_schedule(1.0, 0.0, 10, 11, 0.0, 0, &value);
    expect("warm-up > total", status, PATCHMIX_E_WARMUP_EXCEEDS_TOTAL);

    printf("failures %d\n", failures);
    return failures == 0 ? 0 : 1;
}
