/*
 * patchmix.h: C ABI of patchmix-core (Rust crate `patchmix-core`, feature `ffi`).
 *
 * Hand-written; must match core/src/ffi.rs (checked by core/tests/c_abi.rs, which compiles and
 * runs core/tests/c/smoke.c against this header).
 *
 * Build the library from the workspace root:
 *   cargo rustc -p patchmix-core --release --lib --features ffi --crate-type staticlib
 *   cargo rustc -p patchmix-core --release --lib --features ffi --crate-type cdylib
 * and link target/release/libpatchmix_core.a (with -lpthread -ldl -lm on Linux) or
 * libpatchmix_core.so.
 *
 * Conventions
 *   - Every function returns int32_t status: PATCHMIX_OK (0) or a negative PATCHMIX_E_* code,
 *     and writes its results into caller buffers.
 *   - Every buffer comes with its length in elements, which must be exactly the length needed.
 *     A NULL pointer is accepted only with length 0. Input and output buffers must not overlap.
 *   - On error, output buffers are left untouched. patchmix_status_message(status) gives a fixed
 *     description; patchmix_last_error_message() the detailed one (naming parameter and value)
 *     of the last failure on the calling thread.
 *
 * Semantics (identical to the Rust API; see the crate documentation)
 *   Images are NCHW with H = W = grid * p; tokens are p x p patches, t = row * grid + col,
 *   T = grid * grid. perm is shared by the batch: shuffled position j holds token perm[j].
 *   With S = T / m, mixed image b holds S tokens from each of images b, b+1, ..., b+m-1 (mod B).
 *   source[b*T + t] is the input token (b' * T + t') that output token (b, t) is copied from.
 */
#ifndef PATCHMIX_H
#define PATCHMIX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PATCHMIX_ABI_VERSION 1u

/* Status codes (stable). */
#define PATCHMIX_OK 0
#define PATCHMIX_E_ZERO_BATCH (-1)
#define PATCHMIX_E_ZERO_GRID (-2)
#define PATCHMIX_E_ZERO_MIX (-3)
#define PATCHMIX_E_MIX_EXCEEDS_TOKENS (-5)
#define PATCHMIX_E_ZERO_CHANNELS (-6)
#define PATCHMIX_E_NON_SQUARE_IMAGE (-7)
#define PATCHMIX_E_GRID_DOES_NOT_DIVIDE (-8)
#define PATCHMIX_E_PERMUTATION_LENGTH (-9)
#define PATCHMIX_E_PERMUTATION_OUT_OF_RANGE (-10)
#define PATCHMIX_E_PERMUTATION_DUPLICATE (-11)
#define PATCHMIX_E_BUFFER_LENGTH (-12)
#define PATCHMIX_E_SOURCE_OUT_OF_RANGE (-13)
#define PATCHMIX_E_SIZE_OVERFLOW (-14)
#define PATCHMIX_E_INDEX_OVERFLOW (-15)
#define PATCHMIX_E_INVALID_SMOOTHING (-16)
#define PATCHMIX_E_ZERO_WORLD_SIZE (-17)
#define PATCHMIX_E_RANK_OUT_OF_RANGE (-18)
#define PATCHMIX_E_INVALID_SCHEDULE_VALUE (-19)
#define PATCHMIX_E_WARMUP_EXCEEDS_TOTAL (-20)
#define PATCHMIX_E_SCHEDULE_INDEX_OUT_OF_RANGE (-21)
#define PATCHMIX_E_EPOCH_OUT_OF_RANGE (-22)
#define PATCHMIX_E_INVALID_MOMENTUM (-23)
#define PATCHMIX_E_NULL_POINTER (-24)
#define PATCHMIX_E_SCHEDULE_OVERFLOW (-25)
#define PATCHMIX_E_PANIC (-99)

/* ABI version of the linked library (compare with PATCHMIX_ABI_VERSION). */
uint32_t patchmix_abi_version(void);

/* Static, NUL-terminated description of a status code. Never NULL; do not free. */
const char *patchmix_status_message(int32_t status);

/* Copies the last error message of this thread into buf (truncated to len-1 bytes,
 * NUL-terminated) and returns its full length in bytes, like snprintf. */
size_t patchmix_last_error_message(char *buf, size_t len);

/* perm[0..tokens) := the permutation drawn from seed (SplitMix64 state = seed; unbiased
 * Fisher-Yates from the back, j = below(i + 1) by rejection of draws < 2^64 mod n). */
int32_t patchmix_permutation_from_seed(uint64_t seed, uint32_t *perm, size_t tokens);

/* inv := argsort(perm); fails unless perm is a permutation of 0..tokens. */
int32_t patchmix_inverse(const uint32_t *perm, uint32_t *inv, size_t tokens);

/* source[0..batch*grid^2) := the PatchMix gather for perm (perm_len must be grid^2,
 * source_len batch*grid^2, 1 <= mix <= grid^2). */
int32_t patchmix_source(size_t batch, size_t grid, size_t mix,
                        const uint32_t *perm, size_t perm_len,
                        uint32_t *source, size_t source_len);

/* output := input gathered by source, for an NCHW float batch of len = batch*channels*height*width
 * elements with height == width divisible by grid. */
int32_t patchmix_apply_nchw_f32(size_t batch, size_t grid,
                                const uint32_t *source, size_t source_len,
                                size_t channels, size_t height, size_t width,
                                const float *input, float *output, size_t len);

/* output := input gathered by source, for a patch buffer [batch, grid^2, token_len] of len floats. */
int32_t patchmix_apply_patches_f32(size_t batch, size_t grid,
                                   const uint32_t *source, size_t source_len,
                                   size_t token_len,
                                   const float *input, float *output, size_t len);

/* Soft targets, row-major batch x N with N = batch * world_size; this rank's columns start at
 * rank * batch; off value smoothing / N. len must be batch * N. */
int32_t patchmix_origin_targets_f32(size_t batch, size_t world_size, size_t rank,
                                    double smoothing, float *out, size_t len);
int32_t patchmix_mix_to_origin_targets_f32(size_t batch, size_t mix, size_t world_size,
                                           size_t rank, double smoothing,
                                           float *out, size_t len);
int32_t patchmix_mix_to_mix_targets_f32(size_t batch, size_t mix, size_t world_size,
                                        size_t rank, double smoothing,
                                        float *out, size_t len);

/* Schedules; the value is written to *out. */
int32_t patchmix_cosine_schedule(double base, double final_value, uint64_t total_iters,
                                 uint64_t warmup_iters, double start_warmup, uint64_t iter,
                                 double *out);
int32_t patchmix_momentum_schedule(double base_momentum, double epoch, double total_epochs,
                                   double *out);
int32_t patchmix_temperature_schedule(double warmup_temp, double temp, uint64_t warmup_epochs,
                                      uint64_t epoch, double *out);

#ifdef __cplusplus
}
#endif

#endif /* PATCHMIX_H */
