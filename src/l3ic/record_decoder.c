/* The compiled reader of .l3ic records (format versions 3 and 4, docs/format.md): parses a
 * record's header and decodes the ANS streams of the channels asked for, in one call.
 *
 * Bit for bit what the Python reader gives (container.parse + channel_modes.decode_channel, built on
 * constriction): the streams are constriction's AnsCoder stacks (32-bit words, 64-bit state,
 * 24-bit probabilities) over Categorical(table, perfect=False) models. For a table of integer
 * counts summing to 2**bits, that model's cumulative table is exactly
 *     cdf[i] = floor(sum(counts[:i]) * (2**24 - 32) / 2**bits) + i,   cdf[32] = 2**24
 * (constriction's "fast" quantization: every symbol gets 1 plus its share of the rest, in
 * float64 arithmetic that is exact for these integers). tests/test_record_decoder.py checks
 * the agreement on random tables, latents and damaged streams.
 *
 * This code never raises errors of its own: on anything it does not accept (another version,
 * another preset or weights, a damaged header, a stream that does not end on the seal, ...) it
 * returns a negative number and the caller falls back to the Python reader, which names the
 * fault. It checks no CRC-32 (the caller does, with zlib); it does refuse, before decoding, a
 * stream far too short for its symbols, and every read stays inside the buffer it is given.
 *
 * Plain C99, no Python headers: loaded with ctypes (record_decoder.py).
 */
#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#define ALPHABET 32
#define QMIN (-15)
#define PRECISION 24
#define TOTAL (1u << PRECISION)
#define TABLE_BITS 12
#define MIN_TABLE_BITS 6
#define MAX_SIDE (1 << 20)
#define MAX_PIXELS (1LL << 28)
#define MAX_CHANNELS 1024
#define FINGERPRINT_BYTES 8
#define ORDERED_VERSION 3 /* from this version on: the streams in stream order */
#define CONTEXT_VERSION 4 /* from this version on: the tables id, the context mode */
#define TABLES_ID_BYTES 4
#define CONTEXTS 100
#define LUT_SHIFT 14 /* the symbol lookup table has one entry per 2**14 quantiles */
#define LUT_SIZE (1 << (PRECISION - LUT_SHIFT))
#define CONTEXT_LUT_SHIFT 16 /* a context table's lookup: one entry per 2**16 quantiles */
#define CONTEXT_LUT_SIZE (1 << (PRECISION - CONTEXT_LUT_SHIFT))

enum { CONSTANT = 0, PRIOR = 1, TABLE = 2, CONTEXT = 3 };

/* What l3ic_decode reports besides the latent (indices into `info`). */
enum { I_WIDTH, I_HEIGHT, I_H, I_W, I_GRAY, I_HEADER, I_FILE, I_INFO };

typedef struct {
    int mode;
    int symbol;     /* CONSTANT: the constant symbol */
    int64_t table;  /* TABLE: where its stored table starts in the header */
    int64_t length; /* stream bytes (0 for CONSTANT) */
    int64_t offset; /* the stream's first byte in the record */
} Channel;

static int read_varint(const uint8_t *buf, int64_t size, int64_t *pos, uint64_t *value) {
    uint64_t v = 0;
    for (int i = 0; i < 5; i++) {
        if (*pos >= size) return -1;
        uint8_t byte = buf[(*pos)++];
        v |= (uint64_t)(byte & 0x7F) << (7 * i);
        if (!(byte & 0x80)) {
            *value = v;
            return 0;
        }
    }
    return -1;
}

/* The cumulative table of counts summing to 2**bits (see the top of this file). */
static void quantized_cdf(const int64_t *counts, int bits, uint32_t *cdf) {
    uint64_t cumulative = 0;
    for (int i = 0; i < ALPHABET; i++) {
        cdf[i] = (uint32_t)((cumulative * (TOTAL - ALPHABET)) >> bits) + (uint32_t)i;
        cumulative += (uint64_t)counts[i];
    }
    cdf[ALPHABET] = TOTAL;
}

/* A stored frequency table (entropy.pack_table), checked as entropy.unpack_table does. */
static int read_table(const uint8_t *buf, int64_t size, int64_t *pos, uint32_t *cdf) {
    if (*pos + 2 > size) return -1;
    int lo = buf[*pos] & 31, bits = TABLE_BITS - (buf[*pos] >> 5), n = buf[*pos + 1];
    *pos += 2;
    if (n < 1 || lo + n > ALPHABET || bits < MIN_TABLE_BITS) return -1;
    int64_t total = (int64_t)1 << bits, sum = 0, counts[ALPHABET] = {0};
    for (int k = lo; k < lo + n - 1; k++) {
        uint64_t count;
        if (read_varint(buf, size, pos, &count)) return -1;
        if ((int64_t)count > total) return -1;
        counts[k] = (int64_t)count;
        sum += counts[k];
    }
    counts[lo + n - 1] = total - sum;
    if (counts[lo + n - 1] < 1) return -1;
    quantized_cdf(counts, bits, cdf);
    return 0;
}

/* The cumulative table channel k is coded with: its prior's, or its stored table's, read into
 * buf (the header parse has already checked that table). */
static const uint32_t *channel_cdf(const uint8_t *data, int64_t size, const Channel *ch,
                                   const uint32_t *prior_cdfs, int k, uint32_t *buf) {
    if (ch->mode != TABLE) return prior_cdfs + (int64_t)k * (ALPHABET + 1);
    int64_t at = ch->table;
    read_table(data, size, &at, buf);
    return buf;
}

/* Fewer bits than any stream of this table spends per symbol: -log2 of its largest probability,
 * raised by a margin (2**-12, more than entropy.min_bits_per_symbol's) so that this bound
 * refuses only streams that the Python reader refuses too. */
static double min_bits_per_symbol(const uint32_t *cdf) {
    uint32_t most = 0;
    for (int s = 0; s < ALPHABET; s++)
        if (cdf[s + 1] - cdf[s] > most) most = cdf[s + 1] - cdf[s];
    double p = (double)most / TOTAL + 1.0 / 4096;
    return p >= 1.0 ? 0.0 : -log2(p);
}

static inline uint32_t word_at(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* One stream being decoded. The stream is a stack of little-endian words, its top the last
 * one; a sealed stream starts from a nonzero top word and ends, after exactly its symbols, with
 * no word left and the state 2**32. */
typedef struct {
    const uint8_t *stream;
    int64_t pos; /* words not yet read */
    uint64_t state;
    const uint32_t *cdf;
    const uint8_t *lut; /* the first symbol whose interval may hold each 2**LUT_SHIFT quantiles */
    int8_t *out;
} Lane;

static int start_lane(Lane *lane, const uint8_t *stream, int64_t length, const uint32_t *cdf,
                      uint8_t *lut, int8_t *out) {
    for (int s = 0, j = 0; j < LUT_SIZE; j++) {
        while (cdf[s + 1] <= ((uint32_t)j << LUT_SHIFT)) s++;
        lut[j] = (uint8_t)s;
    }
    lane->stream = stream, lane->cdf = cdf, lane->lut = lut, lane->out = out;
    lane->pos = length / 4;
    if (lane->pos < 2) return -1;
    lane->state = word_at(stream + 4 * --lane->pos);
    if (lane->state == 0) return -1;
    lane->state = lane->state << 32 | word_at(stream + 4 * --lane->pos);
    return 0;
}

/* Decodes symbol i of a lane into out[i * stride], as a latent value. */
static inline void step(Lane *lane, int64_t i, int64_t stride) {
    uint32_t quantile = (uint32_t)lane->state & (TOTAL - 1);
    unsigned s = lane->lut[quantile >> LUT_SHIFT];
    while (lane->cdf[s + 1] <= quantile) s++;
    lane->state = (lane->state >> PRECISION) * (lane->cdf[s + 1] - lane->cdf[s]) +
                  (quantile - lane->cdf[s]);
    if (lane->state >> 32 == 0 && lane->pos > 0)
        lane->state = lane->state << 32 | word_at(lane->stream + 4 * --lane->pos);
    lane->out[i * stride] = (int8_t)((int)s + QMIN);
}

static int sealed(const Lane *lane) {
    return lane->pos == 0 && lane->state == ((uint64_t)1 << 32);
}

/* Decodes n symbols of each of `count` (1..4) lanes: four in step, whose independent
 * steps the CPU overlaps, else one by one. Returns 0 if every lane ends on the seal. */
static int decode_group(Lane *lanes, int count, int64_t n, int64_t stride) {
    int ok = 1;
    if (count == 4) {
        Lane a = lanes[0], b = lanes[1], c = lanes[2], d = lanes[3];
        for (int64_t i = 0; i < n; i++) {
            step(&a, i, stride);
            step(&b, i, stride);
            step(&c, i, stride);
            step(&d, i, stride);
        }
        return sealed(&a) && sealed(&b) && sealed(&c) && sealed(&d) ? 0 : -1;
    }
    for (int k = 0; k < count; k++) {
        Lane a = lanes[k];
        for (int64_t i = 0; i < n; i++) step(&a, i, stride);
        ok = ok && sealed(&a);
    }
    return ok ? 0 : -1;
}

/* A block of a context table (RecordDecoder builds them, one for each distinct table of a
 * channel): its cumulative table, 33 uint32, then its lookup, CONTEXT_LUT_SIZE uint8 (the first
 * symbol whose interval may hold each 2**CONTEXT_LUT_SHIFT quantiles). A channel's contexts
 * share a few tables (context_model.TABLE_GROUPS), so its blocks stay in the nearest cache. */
#define CDF_BYTES (4 * (ALPHABET + 1))
#define CONTEXT_BLOCK (CDF_BYTES + CONTEXT_LUT_SIZE)
#define EDGE_SYMBOL 15 /* q = 0: what a neighbour outside the channel reads as */
#define LANES 4        /* context-coded channels decoded in step */
#define CHUNK 16       /* contexts are found CHUNK cells (of every lane) at a time */
#define CONTEXT_SLOTS 128 /* a lane's share of a group's block pointers (CONTEXTS used) */

/* The contexts (context_model.py) of CHUNK cells of a wavefront, of the LANES lanes at once:
 * byte b is cell b / LANES of lane b % LANES. From the symbols s = q + 15 of the wavefronts
 * one, two and three before it (rows of a skewed plane, see decode_context_group, from the
 * column before the first cell): left one[b + LANES], left of left two[b + LANES], top two[b],
 * top-left three[b], top-right one[b]. The context is
 * 20 clip(L) + 4 clip(T) + bucket(|TL| + |TR| + |LL|), clip(s) = clip(q, -2, 2) + 2, the
 * bucket's 4 levels 0 | 1-2 | 3-5 | 6+. Byte arithmetic in a loop of fixed length, which
 * compilers turn into vector instructions (gcc -O2 does): a few instructions a cell. */
static void chunk_contexts(const uint8_t *restrict one, const uint8_t *restrict two,
                           const uint8_t *restrict three, uint8_t *restrict ctx) {
    for (int b = 0; b < CHUNK * LANES; b++) {
        uint8_t l = one[b + LANES], ll = two[b + LANES], t = two[b], tl = three[b], tr = one[b];
        uint8_t cl = l > 13 ? l - 13 : 0, ct = t > 13 ? t - 13 : 0;
        cl = cl < 4 ? cl : 4, ct = ct < 4 ? ct : 4;
        uint8_t size = (uint8_t)((tl > 15 ? tl - 15 : 15 - tl) + (tr > 15 ? tr - 15 : 15 - tr) +
                                 (ll > 15 ? ll - 15 : 15 - ll));
        ctx[b] = (uint8_t)(20 * cl + 4 * ct + (size >= 1) + (size >= 3) + (size >= 6));
    }
}

/* Decodes one symbol of a context-coded stream with the block of its context: *state is the
 * coder's state, *next the end of the next word to read, start the stream's first byte. */
static inline uint8_t context_step(uint64_t *state, const uint8_t **next, const uint8_t *block,
                                   const uint8_t *start) {
    const uint32_t *cdf = (const uint32_t *)block;
    const uint8_t *lut = block + CDF_BYTES;
    uint32_t quantile = (uint32_t)*state & (TOTAL - 1);
    unsigned s = lut[(uint8_t)(*state >> CONTEXT_LUT_SHIFT)];
    uint32_t high = cdf[s + 1];
    while (high <= quantile) high = cdf[++s + 1];
    uint32_t low = cdf[s];
    *state = (*state >> PRECISION) * (high - low) + (quantile - low);
    if (*state >> 32 == 0 && *next > start) {
        *next -= 4;
        *state = *state << 32 | word_at(*next);
    }
    return (uint8_t)s;
}

/* Decodes `count` (1..LANES) context-coded lanes of an (h, w) channel in wavefront order
 * (t = 2 i + j, then ascending i: context_model.wavefronts), in step, then writes them to the
 * lanes' outputs as latent values (every `stride`-th byte). Context c of lane k is decoded
 * with the block at blocks + where[k][c].
 *
 * The lanes' symbols go to a skewed plane whose rows are the wavefronts: cell (i, j) at row
 * 2 i + j + 3, column i + 1, each cell LANES bytes (one per lane). A wavefront's neighbours
 * are then contiguous bytes of the three rows before it, and the contexts of all lanes are
 * found in one pass before it is decoded. A slot that no cell fills (a neighbour outside the
 * channel, or past a wavefront's end) holds EDGE_SYMBOL. Lanes beyond count decode a stream of
 * zeros with lane 0's tables, never written out: a group of fewer lanes still steps four.
 * Returns 0 if every lane ends on the seal, -1 if not, -11 if memory ran out or the plane would
 * be out of proportion. */
static int decode_context_group(Lane *lanes, const uint8_t *blocks, const uint32_t **where,
                                int count, int64_t h, int64_t w, int64_t stride) {
    int64_t fronts = 2 * (h - 1) + w, row = LANES * (h + 1 + CHUNK), cells = (fronts + 3) * row;
    /* The plane grows as (2 h + w) h: for a channel far taller than wide (a strip a few pixels
     * wide) it would be out of proportion to the latent, so such channels go to the Python
     * reader, whose memory follows h w. */
    if (cells > ((int64_t)1 << 26) && cells > 16 * LANES * h * w) return -11;
    int64_t spare = count < LANES ? 4 * h * w : 0; /* the stream of the lanes beyond count */
    uint8_t *plane = malloc((size_t)(cells + LANES * (h + CHUNK + 1) + spare));
    if (plane == NULL) return -11;
    memset(plane, EDGE_SYMBOL, (size_t)cells);
    uint8_t *front = plane + 3 * row + LANES; /* wavefront 0's row, cell 0 */
    uint8_t *ctx = plane + cells;             /* ctx[LANES * i + k]: cell i of lane k */
    const uint8_t *block[LANES * CONTEXT_SLOTS]; /* lane k's context c: block[128 k + c] */
    uint64_t state[LANES];
    const uint8_t *next[LANES], *start[LANES];
    /* Lanes beyond count decode zeros with lane 0's tables, unused: the four stay in step. */
    uint8_t *zeros = ctx + LANES * (h + CHUNK + 1);
    if (spare) memset(zeros, 0, (size_t)spare);
    for (int k = 0; k < LANES; k++) {
        int real = k < count;
        for (int c = 0; c < CONTEXTS; c++)
            block[CONTEXT_SLOTS * k + c] = blocks + where[real ? k : 0][c];
        state[k] = real ? lanes[k].state : (uint64_t)1 << 32;
        start[k] = real ? lanes[k].stream : zeros;
        next[k] = real ? lanes[k].stream + 4 * lanes[k].pos : zeros + spare;
    }
    uint64_t sa = state[0], sb = state[1], sc = state[2], sd = state[3];
    const uint8_t *na = next[0], *nb = next[1], *nc = next[2], *nd = next[3];
    for (int64_t t = 0, at = 0; t < fronts; t++, at += row) {
        int64_t first = t - (w - 1) > 0 ? (t - (w - 1) + 1) / 2 : 0, last = t / 2;
        if (last > h - 1) last = h - 1;
        for (int64_t i = first - 1; i < last; i += CHUNK)
            chunk_contexts(front + at + LANES * i - row, front + at + LANES * i - 2 * row,
                           front + at + LANES * i - 3 * row, ctx + LANES * (i + 1));
        /* The four lanes in step, in locals: the CPU overlaps their steps. */
        uint8_t *f = front + at;
        for (int64_t i = first; i <= last; i++) {
            const uint8_t *x = ctx + LANES * i;
            const uint8_t *ba = block[x[0]], *bb = block[CONTEXT_SLOTS + x[1]];
            const uint8_t *bc = block[2 * CONTEXT_SLOTS + x[2]];
            const uint8_t *bd = block[3 * CONTEXT_SLOTS + x[3]];
            uint8_t *c = f + LANES * i;
            c[0] = context_step(&sa, &na, ba, start[0]);
            c[1] = context_step(&sb, &nb, bb, start[1]);
            c[2] = context_step(&sc, &nc, bc, start[2]);
            c[3] = context_step(&sd, &nd, bd, start[3]);
        }
    }
    state[0] = sa, state[1] = sb, state[2] = sc, state[3] = sd;
    next[0] = na, next[1] = nb, next[2] = nc, next[3] = nd;
    int ok = 1;
    for (int k = 0; k < count; k++)
        ok = ok && next[k] == start[k] && state[k] == ((uint64_t)1 << 32);
    /* Position by position, all lanes at once: their bytes of the output share a cache line. */
    for (int64_t i = 0; i < h; i++) {
        int64_t from = (2 * i + 3) * row + LANES * (i + 1), to = i * w * stride;
        if (count == LANES && lanes[1].out == lanes[0].out + 1 && lanes[2].out == lanes[0].out + 2 &&
            lanes[3].out == lanes[0].out + 3) {
            /* the lanes are adjacent channels of the output: a position's four bytes at once,
             * s - 15 in each byte of the word (s < 128: no borrow between bytes) */
            int8_t *o = lanes[0].out;
            for (int64_t j = 0; j < w; j++, from += row, to += stride) {
                uint32_t word;
                memcpy(&word, plane + from, 4);
                word = ((word | 0x80808080u) - 0x0F0F0F0Fu) ^ 0x80808080u;
                memcpy(o + to, &word, 4);
            }
        } else if (count == LANES) {
            int8_t *oa = lanes[0].out, *ob = lanes[1].out, *oc = lanes[2].out, *od = lanes[3].out;
            for (int64_t j = 0; j < w; j++, from += row, to += stride) {
                oa[to] = (int8_t)(plane[from] + QMIN);
                ob[to] = (int8_t)(plane[from + 1] + QMIN);
                oc[to] = (int8_t)(plane[from + 2] + QMIN);
                od[to] = (int8_t)(plane[from + 3] + QMIN);
            }
        } else {
            for (int64_t j = 0; j < w; j++, from += row, to += stride)
                for (int k = 0; k < count; k++)
                    lanes[k].out[to] = (int8_t)(plane[from + k] + QMIN);
        }
    }
    free(plane);
    return ok ? 0 : -1;
}

/* Parses the record in data[0:size] (the whole record if `whole`, else at least its header and
 * the streams of the channels picked) and decodes channels picked[0..npicked) into out, an
 * (h, w, npicked) int8 array of out_size bytes.
 *
 * preset (preset_len bytes), fingerprint (8 bytes), channels, stream_order ((channels,) the
 * channel of each stored stream) and prior_cdfs ((channels, 33) cumulative tables of the
 * priors) are the preset's, and so are tables_id (TABLES_ID_BYTES), context_blocks (the
 * CONTEXT_BLOCK blocks of every channel's distinct context tables), context_where ((channels,
 * CONTEXTS) byte offsets into context_blocks: the block of each context of each channel) and
 * context_bits ((channels,) fewer bits per symbol than any stream of a channel's context tables
 * spends), all NULL where the preset has none; max_pixels is the decoding limit. info gets
 * I_INFO numbers,
 * positions the channels + 1 byte positions of the stored streams' starts and of their end.
 *
 * Returns 0 when out holds the latent; 1 when only info was filled because out_size is not
 * h * w * npicked (call again with such a buffer); negative when the record is not one this
 * code decodes (the caller's Python reader then says why). */
int l3ic_decode(const uint8_t *data, int64_t size, int whole, const uint8_t *preset,
                int preset_len, const uint8_t *fingerprint, int channels,
                const int32_t *stream_order, const uint32_t *prior_cdfs, int64_t max_pixels,
                const int32_t *picked, int npicked, int8_t *out, int64_t out_size,
                int64_t *info, int64_t *positions, const uint8_t *tables_id,
                const uint8_t *context_blocks, const uint32_t *context_where,
                const double *context_bits) {
    Channel ch[MAX_CHANNELS];
    if (channels < 1 || channels > MAX_CHANNELS) return -1;
    if (size < 7 || memcmp(data, "L3IC", 4) != 0) return -2;
    int version = data[4];
    if (version != ORDERED_VERSION && version != CONTEXT_VERSION) return -2;
    int flags = data[5], name_len = data[6];
    if (flags & ~1 || name_len != preset_len) return -3;
    int64_t pos = 7;
    if (pos + name_len + FINGERPRINT_BYTES > size) return -3;
    if (memcmp(data + pos, preset, (size_t)name_len) != 0) return -4;
    pos += name_len;
    if (memcmp(data + pos, fingerprint, FINGERPRINT_BYTES) != 0) return -4;
    pos += FINGERPRINT_BYTES;
    int with_contexts = 0; /* the file's tables are the preset's: its context mode decodes */
    if (version >= CONTEXT_VERSION) {
        if (pos + TABLES_ID_BYTES > size) return -3;
        with_contexts = tables_id != NULL && context_blocks != NULL && context_where != NULL &&
                        memcmp(data + pos, tables_id, TABLES_ID_BYTES) == 0;
        pos += TABLES_ID_BYTES;
    }
    uint64_t sizes[5];
    for (int i = 0; i < 5; i++)
        if (read_varint(data, size, &pos, &sizes[i])) return -5;
    uint64_t width = sizes[0], height = sizes[1], h = sizes[2], w = sizes[3];
    if (width < 1 || width > MAX_SIDE || height < 1 || height > MAX_SIDE) return -5;
    if (width * height > (uint64_t)MAX_PIXELS) return -5;
    if (h != (height + 7) / 8 || w != (width + 7) / 8 || sizes[4] != (uint64_t)channels)
        return -5;
    if (64 * h * w > (uint64_t)max_pixels) return -5; /* as the network computes: padded */
    for (int k = 0; k < channels; k++) {
        uint32_t cdf[ALPHABET + 1];
        uint64_t length;
        if (pos >= size) return -6;
        ch[k].mode = data[pos++];
        ch[k].length = 0;
        if (ch[k].mode == CONSTANT) {
            if (pos >= size || data[pos] >= ALPHABET) return -6;
            ch[k].symbol = data[pos++];
            continue;
        }
        if (ch[k].mode == CONTEXT && !with_contexts) return -6; /* Python says why */
        if (ch[k].mode != PRIOR && ch[k].mode != TABLE && ch[k].mode != CONTEXT) return -6;
        if (read_varint(data, size, &pos, &length) || length < 8 || length % 4) return -6;
        ch[k].length = (int64_t)length;
        ch[k].table = pos;
        if (ch[k].mode == TABLE && read_table(data, size, &pos, cdf)) return -6;
    }
    pos += 4; /* the header's CRC-32, checked by the caller */
    int64_t offset = pos;
    for (int i = 0; i < channels; i++) {
        int k = stream_order[i];
        positions[i] = ch[k].offset = offset;
        offset += ch[k].length;
    }
    positions[channels] = offset;
    int64_t n = (int64_t)(h * w);
    info[I_WIDTH] = (int64_t)width, info[I_HEIGHT] = (int64_t)height;
    info[I_H] = (int64_t)h, info[I_W] = (int64_t)w;
    info[I_GRAY] = flags & 1, info[I_HEADER] = pos, info[I_FILE] = offset + 4;
    if (pos > size || (whole && offset + 4 != size)) return -7;
    if (out_size != n * npicked) return 1;
    /* First every stream's length against the fewest bytes that can hold its n symbols, so
     * that a file of a few bytes declaring a large image costs nothing to refuse. */
    uint32_t tables[4][ALPHABET + 1]; /* cumulative tables of TABLE channels, per lane */
    for (int i = 0; i < npicked; i++) {
        int k = picked[i];
        if (k < 0 || k >= channels) return -8;
        if (ch[k].mode == CONSTANT) continue;
        if (ch[k].offset + ch[k].length > size) return -7;
        double bits;
        if (ch[k].mode == CONTEXT) {
            bits = context_bits[k];
        } else {
            bits = min_bits_per_symbol(channel_cdf(data, size, &ch[k], prior_cdfs, k, tables[0]));
        }
        if (8.0 * (double)ch[k].length < (double)n * bits - 64.0) return -10;
    }
    Lane group[4];
    uint8_t luts[4][LUT_SIZE];
    const uint32_t *group_where[4];
    int count = 0;
    for (int i = 0; i < npicked; i++) { /* the context-coded channels, four at a time */
        int k = picked[i];
        if (ch[k].mode != CONTEXT) continue;
        const uint8_t *stream = data + ch[k].offset;
        Lane *lane = &group[count];
        lane->stream = stream, lane->out = out + i, lane->pos = ch[k].length / 4;
        lane->state = word_at(stream + 4 * --lane->pos);
        if (lane->state == 0) return -9;
        lane->state = lane->state << 32 | word_at(stream + 4 * --lane->pos);
        group_where[count] = context_where + (int64_t)k * CONTEXTS;
        if (++count == 4) {
            int status = decode_context_group(group, context_blocks, group_where, count, (int64_t)h,
                                              (int64_t)w, npicked);
            if (status) return status == -1 ? -9 : status;
            count = 0;
        }
    }
    if (count) {
        int status = decode_context_group(group, context_blocks, group_where, count, (int64_t)h,
                                          (int64_t)w, npicked);
        if (status) return status == -1 ? -9 : status;
    }
    count = 0;
    for (int i = 0; i < npicked; i++) {
        int k = picked[i];
        if (ch[k].mode == CONTEXT) continue;
        if (ch[k].mode == CONSTANT) {
            for (int64_t j = 0; j < n; j++) out[j * npicked + i] = (int8_t)(ch[k].symbol + QMIN);
            continue;
        }
        const uint32_t *cdf = channel_cdf(data, size, &ch[k], prior_cdfs, k, tables[count]);
        if (start_lane(&group[count], data + ch[k].offset, ch[k].length, cdf, luts[count],
                       out + i))
            return -9;
        if (++count == 4) {
            if (decode_group(group, count, n, npicked)) return -9;
            count = 0;
        }
    }
    if (count && decode_group(group, count, n, npicked)) return -9;
    return 0;
}
