/* libFuzzer harness of the compiled record reader (src/l3ic/record_decoder.c), under
 * AddressSanitizer and UndefinedBehaviorSanitizer; docs/fuzzing.md.
 *
 *   python tests/fuzz_targets.py --write-preset preset.bin
 *   clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *       -o fuzz_record_decoder tests/fuzz_record_decoder.c -lm
 *   L3IC_FUZZ_PRESET=preset.bin ./fuzz_record_decoder tests/corpus/record/ -max_total_time=600
 *
 * Each input is a record of the shipped 16c preset (the corpus of the Python target "record"
 * of tests/fuzz_targets.py is the same), decoded whole with every channel, from its first
 * bytes with channels 3 and 0, and with a channel list drawn from its last two bytes (a valid
 * record's CRC: 1 to 16 channels, any order, repeats allowed), whole or not by its length. A
 * decode may succeed or give up (a negative status); the sanitizers stop the run at any read or
 * write outside a buffer or any undefined behaviour. */
#include <stdio.h>

/* The reader itself, compiled into the harness: its l3ic_decode is checked against the calls
 * below, and its constants (I_H, I_W) are the ones used. */
#include "../src/l3ic/record_decoder.c"

/* The preset's arguments, in the order tests/fuzz_targets.py --write-preset writes them. */
enum { NAME, FINGERPRINT, CHANNELS, ORDER, CDFS, TABLES_ID, BLOCKS, WHERE, BITS, PARTS };
static uint8_t *part[PARTS];
static int64_t part_len[PARTS];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *path = getenv("L3IC_FUZZ_PRESET");
    FILE *f = fopen(path ? path : "preset.bin", "rb");
    if (f == NULL) {
        fprintf(stderr, "set L3IC_FUZZ_PRESET to the file of fuzz_targets.py --write-preset\n");
        exit(2);
    }
    for (int i = 0; i < PARTS; i++) {
        /* malloc aligns for any type: the tables are read as uint32 and float64 */
        if (fread(&part_len[i], 8, 1, f) != 1 || part_len[i] < 0 || part_len[i] > (1 << 26) ||
            (part[i] = malloc((size_t)part_len[i] + 8)) == NULL ||
            fread(part[i], 1, (size_t)part_len[i], f) != (size_t)part_len[i]) {
            fprintf(stderr, "bad preset file\n");
            exit(2);
        }
    }
    fclose(f);
    return 0;
}

static void decode(const uint8_t *data, size_t size, int whole, const int32_t *picked,
                   int npicked) {
    int64_t info[I_INFO], positions[MAX_CHANNELS + 1];
    int channels = *(const int32_t *)part[CHANNELS];
    int status = l3ic_decode(data, (int64_t)size, whole, part[NAME], (int)part_len[NAME],
                             part[FINGERPRINT], channels, (const int32_t *)part[ORDER],
                             (const uint32_t *)part[CDFS], 1 << 16, picked, npicked, NULL, 0,
                             info, positions, part[TABLES_ID], part[BLOCKS],
                             (const uint32_t *)part[WHERE], (const double *)part[BITS]);
    if (status != 1) return; /* refused from the header */
    int64_t n = info[I_H] * info[I_W] * npicked;
    int8_t *out = malloc((size_t)n);
    if (out == NULL) return;
    l3ic_decode(data, (int64_t)size, whole, part[NAME], (int)part_len[NAME], part[FINGERPRINT],
                channels, (const int32_t *)part[ORDER], (const uint32_t *)part[CDFS], 1 << 16,
                picked, npicked, out, n, info, positions, part[TABLES_ID], part[BLOCKS],
                (const uint32_t *)part[WHERE], (const double *)part[BITS]);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int channels = *(const int32_t *)part[CHANNELS];
    int32_t every[MAX_CHANNELS], two[2] = {3, 0};
    for (int k = 0; k < channels && k < MAX_CHANNELS; k++) every[k] = k;
    /* a copy of exactly size bytes, so that the sanitizer sees any read past the input */
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL) return 0;
    memcpy(copy, data, size);
    decode(copy, size, 1, every, channels);
    decode(copy, size, 0, two, 2);
    if (size >= 2 && channels > 0) {
        int32_t drawn[16];
        unsigned a = data[size - 1], b = data[size - 2], n = 1 + a % 16;
        for (unsigned k = 0; k < n; k++)
            drawn[k] = (int32_t)((b + 7 * k + (a >> 4) * k * k) % (unsigned)channels);
        decode(copy, size, (int)(size & 1), drawn, (int)n);
    }
    free(copy);
    return 0;
}
