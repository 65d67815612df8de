/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */

/* pc_h2c.c: the first request's host on a cleartext HTTP/2 connection,
 * read from the client's first frames (RFC 9113) and header block
 * (HPACK, RFC 7541).  The bytes are a stranger's: every length is checked
 * against what is there, and anything this parser does not need to
 * understand makes it give up (the connection then stays where it is,
 * and mod_http2 there answers 421 for other pools' hosts). */

#include "pc_h2c.h"

#include <string.h>

/* HPACK's Huffman code is canonical: codes of equal length are
 * consecutive and ordered by symbol.  So the code needs only how many
 * codes each length has and the symbols in code order, both derived from
 * the table in RFC 7541, Appendix B (256 is EOS). */
#define HUFF_MAX_BITS 30

static const unsigned short huff_count[HUFF_MAX_BITS + 1] = {
    0, 0, 0, 0, 0, 10, 26, 32, 6, 0, 5, 3, 2, 6, 2, 3,
    0, 0, 0, 3, 8, 13, 26, 29, 12, 4, 15, 19, 29, 0, 4
};

static const unsigned short huff_symbol[257] = {
    48, 49, 50, 97, 99, 101, 105, 111, 115, 116, 32, 37,
    45, 46, 47, 51, 52, 53, 54, 55, 56, 57, 61, 65,
    95, 98, 100, 102, 103, 104, 108, 109, 110, 112, 114, 117,
    58, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76,
    77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 89,
    106, 107, 113, 118, 119, 120, 121, 122, 38, 42, 44, 59,
    88, 90, 33, 34, 40, 41, 63, 39, 43, 124, 35, 62,
    0, 36, 64, 91, 93, 126, 94, 125, 60, 96, 123, 92,
    195, 208, 128, 130, 131, 162, 184, 194, 224, 226, 153, 161,
    167, 172, 176, 177, 179, 209, 216, 217, 227, 229, 230, 129,
    132, 133, 134, 136, 146, 154, 156, 160, 163, 164, 169, 170,
    173, 178, 181, 185, 186, 187, 189, 190, 196, 198, 228, 232,
    233, 1, 135, 137, 138, 139, 140, 141, 143, 147, 149, 150,
    151, 152, 155, 157, 158, 165, 166, 168, 174, 175, 180, 182,
    183, 188, 191, 197, 231, 239, 9, 142, 144, 145, 148, 159,
    171, 206, 215, 225, 236, 237, 199, 207, 234, 235, 192, 193,
    200, 201, 202, 205, 210, 213, 218, 219, 238, 240, 242, 243,
    255, 203, 204, 211, 212, 214, 221, 222, 223, 241, 244, 245,
    246, 247, 248, 250, 251, 252, 253, 254, 2, 3, 4, 5,
    6, 7, 8, 11, 12, 14, 15, 16, 17, 18, 19, 20,
    21, 23, 24, 25, 26, 27, 28, 29, 30, 31, 127, 220,
    249, 10, 13, 22, 256
};

#define HUFF_EOS 256

int pc_h2c_huffman(const unsigned char *in, apr_size_t n,
                   char *out, apr_size_t max)
{
    /* 'code' is the bits read of the current symbol; 'first' the first
     * code of their length, 'index' where that length's symbols start. */
    unsigned long code = 0, first = 0;
    unsigned int index = 0, len = 0, ones = 1;
    apr_size_t i, o = 0;
    int bit;

    for (i = 0; i < n; i++) {
        for (bit = 7; bit >= 0; bit--) {
            unsigned int b = (in[i] >> bit) & 1;

            code |= b;
            ones &= b;
            len++;
            if (code - first < huff_count[len]) {
                unsigned int sym = huff_symbol[index + (code - first)];

                if (sym == HUFF_EOS || o >= max) {
                    return -1;
                }
                out[o++] = (char)sym;
                code = first = 0;
                index = len = 0;
                ones = 1;
                continue;
            }
            if (len == HUFF_MAX_BITS) {
                return -1;
            }
            index += huff_count[len];
            first = (first + huff_count[len]) << 1;
            code <<= 1;
        }
    }
    /* What is left must be padding: fewer than 8 bits, all ones (the
     * start of EOS). */
    if (len > 7 || !ones) {
        return -1;
    }
    return (int)o;
}

/* An HPACK integer with a 'prefix'-bit prefix (RFC 7541, 5.1) at *pos;
 * at most four continuation bytes, far more than any length here. */
static int hpack_int(const unsigned char *b, apr_size_t n, apr_size_t *pos,
                     int prefix, apr_size_t *val)
{
    apr_size_t limit = ((apr_size_t)1 << prefix) - 1;
    apr_size_t v;
    int shift;

    if (*pos >= n) {
        return -1;
    }
    v = b[(*pos)++] & limit;
    if (v < limit) {
        *val = v;
        return 0;
    }
    for (shift = 0; shift <= 21; shift += 7) {
        unsigned char c;

        if (*pos >= n) {
            return -1;
        }
        c = b[(*pos)++];
        v += (apr_size_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *val = v;
            return 0;
        }
    }
    return -1;
}

typedef struct hstr_t {
    const unsigned char *data;
    apr_size_t len;
    int huffman;
} hstr_t;

/* A string literal (RFC 7541, 5.2) at *pos, not yet decoded. */
static int hpack_str(const unsigned char *b, apr_size_t n, apr_size_t *pos,
                     hstr_t *s)
{
    if (*pos >= n) {
        return -1;
    }
    s->huffman = (b[*pos] & 0x80) != 0;
    if (hpack_int(b, n, pos, 7, &s->len) < 0 || s->len > n - *pos) {
        return -1;
    }
    s->data = b + *pos;
    *pos += s->len;
    return 0;
}

static int hstr_decode(const hstr_t *s, char *out, apr_size_t max)
{
    if (s->huffman) {
        return pc_h2c_huffman(s->data, s->len, out, max);
    }
    if (s->len > max) {
        return -1;
    }
    memcpy(out, s->data, s->len);
    return (int)s->len;
}

/* Indexes of the static table (RFC 7541, Appendix A). */
#define HPACK_AUTHORITY 1
#define HPACK_HOST 38
#define HPACK_STATIC_LAST 61

enum { NAME_OTHER, NAME_AUTHORITY, NAME_HOST };

static int name_kind(apr_size_t index, const hstr_t *literal)
{
    char name[16];
    int len;

    if (index == HPACK_AUTHORITY) {
        return NAME_AUTHORITY;
    }
    if (index == HPACK_HOST) {
        return NAME_HOST;
    }
    if (index != 0) {
        return NAME_OTHER;
    }
    /* Too long (or not decodable) for either name: another header. */
    len = hstr_decode(literal, name, sizeof(name));
    if (len == 10 && memcmp(name, ":authority", 10) == 0) {
        return NAME_AUTHORITY;
    }
    if (len == 4 && memcmp(name, "host", 4) == 0) {
        return NAME_HOST;
    }
    return NAME_OTHER;
}

typedef struct found_t {
    char value[2][PC_H2C_MAX + 1];   /* :authority, host */
    int have[2];
} found_t;

/* One header field representation at *pos (RFC 7541, 6).  The dynamic
 * table is empty at a connection's first header block, so a reference
 * to it can only be to a field of this same block: given up. */
static int one_field(const unsigned char *b, apr_size_t n, apr_size_t *pos,
                     found_t *f)
{
    unsigned char first = b[*pos];
    apr_size_t index;
    hstr_t name, value;
    int kind, len, slot;

    if (first & 0x80) {                       /* indexed field */
        if (hpack_int(b, n, pos, 7, &index) < 0 || index == 0
            || index > HPACK_STATIC_LAST) {
            return -1;
        }
        return 0;              /* static entries 1 and 38 have no value */
    }
    if ((first & 0xe0) == 0x20) {             /* dynamic table size */
        return hpack_int(b, n, pos, 5, &index);
    }
    if (hpack_int(b, n, pos, (first & 0x40) ? 6 : 4, &index) < 0
        || index > HPACK_STATIC_LAST
        || (index == 0 && hpack_str(b, n, pos, &name) < 0)
        || hpack_str(b, n, pos, &value) < 0) {
        return -1;
    }
    kind = name_kind(index, &name);
    if (kind == NAME_OTHER) {
        return 0;
    }
    slot = kind == NAME_AUTHORITY ? 0 : 1;
    if (f->have[slot]) {
        return -1;             /* twice: mod_http2 decides what it means */
    }
    len = hstr_decode(&value, f->value[slot], PC_H2C_MAX);
    if (len < 0) {
        return -1;
    }
    f->value[slot][len] = '\0';
    f->have[slot] = 1;
    return 0;
}

static int host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
           || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'
           || ch == '_';
}

/* "name[:port]" or "[v6]:port" into the bare host; -1 if it is not one
 * (the caller gives up, and httpd's own checks answer it). */
static int bare_host(const char *authority, char host[PC_H2C_MAX + 1])
{
    const char *end, *p;

    if (authority[0] == '[') {
        end = strchr(authority, ']');
        if (end == NULL) {
            return -1;
        }
        for (p = authority + 1; p < end; p++) {
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')
                  || (*p >= 'A' && *p <= 'F') || *p == ':' || *p == '.')) {
                return -1;
            }
        }
        end++;
    }
    else {
        for (end = authority; host_char(*end); end++) {
        }
    }
    if (*end == ':') {
        for (p = end + 1; *p >= '0' && *p <= '9'; p++) {
        }
        if (p == end + 1 || *p != '\0') {
            return -1;
        }
    }
    else if (*end != '\0') {
        return -1;
    }
    memcpy(host, authority, (apr_size_t)(end - authority));
    host[end - authority] = '\0';
    return 0;
}

static int header_block(const unsigned char *b, apr_size_t n,
                        char host[PC_H2C_MAX + 1])
{
    found_t f;
    apr_size_t pos = 0;

    f.have[0] = f.have[1] = 0;
    while (pos < n) {
        if (one_field(b, n, &pos, &f) < 0) {
            return -1;
        }
    }
    /* As mod_http2: a non-empty :authority, else Host. */
    if (f.have[0] && f.value[0][0] != '\0') {
        return bare_host(f.value[0], host) < 0 ? -1 : 1;
    }
    if (f.have[1]) {
        return bare_host(f.value[1], host) < 0 ? -1 : 1;
    }
    host[0] = '\0';
    return 1;
}

/* Frame types (RFC 9113, 6) and HEADERS flags. */
#define FRAME_HEADER_LEN PC_H2C_FRAME_HEADER_LEN
#define FRAME_MAX_PAYLOAD 16384    /* SETTINGS_MAX_FRAME_SIZE's default */
#define FRAME_HEADERS 1
#define FRAME_PRIORITY 2
#define FRAME_SETTINGS 4
#define FRAME_PING 6
#define FRAME_WINDOW_UPDATE 8
#define FRAME_CONTINUATION 9
#define FRAME_LAST_KNOWN FRAME_CONTINUATION
#define FLAG_END_HEADERS 0x4
#define FLAG_PADDED 0x8
#define FLAG_PRIORITY 0x20
/* Frames looked through before the first HEADERS. */
#define MAX_FRAMES 16

/* The first HEADERS frame's header block fragment: its padding and
 * priority removed.  Returns 0, or -1 if the frame is malformed. */
static int headers_fragment(const unsigned char *p, apr_size_t len,
                            int flags, const unsigned char **frag,
                            apr_size_t *frag_len)
{
    apr_size_t off = 0, pad = 0;

    if (flags & FLAG_PADDED) {
        if (len < 1) {
            return -1;
        }
        pad = p[0];
        off = 1;
    }
    if (flags & FLAG_PRIORITY) {
        off += 5;
    }
    if (off + pad > len) {
        return -1;
    }
    *frag = p + off;
    *frag_len = len - off - pad;
    return 0;
}

/* The first request's header block, which starts with the HEADERS frame
 * whose payload is at 'pos' (of 'len' bytes): in that frame alone, or
 * joined in 'scratch' with the CONTINUATION frames of the same stream
 * that follow it, up to the one with END_HEADERS (RFC 9113, 6.10). */
static int first_block(const unsigned char *b, apr_size_t n, apr_size_t pos,
                       apr_size_t len, unsigned char *scratch,
                       char host[PC_H2C_MAX + 1], apr_size_t *need,
                       int *open)
{
    const unsigned char *frag;
    apr_size_t frag_len, got;
    int flags = b[pos - FRAME_HEADER_LEN + 4];
    const unsigned char *stream = b + pos - FRAME_HEADER_LEN + 5;

    if (headers_fragment(b + pos, len, flags, &frag, &frag_len) < 0) {
        return -1;
    }
    if (flags & FLAG_END_HEADERS) {
        return header_block(frag, frag_len, host);
    }
    memcpy(scratch, frag, frag_len);
    got = frag_len;
    pos += len;
    *open = 1;
    for (;;) {
        apr_size_t clen;

        if (n < pos + FRAME_HEADER_LEN) {
            *need = pos + FRAME_HEADER_LEN;
            return 0;
        }
        clen = ((apr_size_t)b[pos] << 16) | ((apr_size_t)b[pos + 1] << 8)
               | b[pos + 2];
        if (b[pos + 3] != FRAME_CONTINUATION
            || (b[pos + 5] & 0x7f) != (stream[0] & 0x7f)
            || memcmp(b + pos + 6, stream + 1, 3) != 0
            || clen > FRAME_MAX_PAYLOAD) {
            return -1;         /* a connection error for mod_http2 */
        }
        if (n - pos - FRAME_HEADER_LEN < clen) {
            *need = pos + FRAME_HEADER_LEN + clen;
            return 0;
        }
        memcpy(scratch + got, b + pos + FRAME_HEADER_LEN, clen);
        got += clen;
        if (b[pos + 4] & FLAG_END_HEADERS) {
            return header_block(scratch, got, host);
        }
        pos += FRAME_HEADER_LEN + clen;
    }
}

#define FLAG_ACK 0x1

long pc_h2c_settings_ack(const unsigned char *b, apr_size_t n,
                         apr_size_t from)
{
    apr_size_t pos = PC_H2C_PREFACE_LEN;

    while (n >= FRAME_HEADER_LEN && pos <= n - FRAME_HEADER_LEN) {
        apr_size_t len = ((apr_size_t)b[pos] << 16)
                         | ((apr_size_t)b[pos + 1] << 8) | b[pos + 2];

        if (pos >= from && b[pos + 3] == FRAME_SETTINGS
            && (b[pos + 4] & FLAG_ACK) && len == 0) {
            return (long)pos;
        }
        if (len > n - pos - FRAME_HEADER_LEN) {
            break;
        }
        pos += FRAME_HEADER_LEN + len;
    }
    return -1;
}

int pc_h2c_parse(const unsigned char *b, apr_size_t n,
                 unsigned char *scratch, char host[PC_H2C_MAX + 1],
                 apr_size_t *need, int *open)
{
    apr_size_t pos = PC_H2C_PREFACE_LEN;
    int frames;

    *open = 0;
    if (memcmp(b, PC_H2C_PREFACE, n < pos ? n : pos) != 0) {
        return -1;
    }
    for (frames = 0; frames < MAX_FRAMES; frames++) {
        apr_size_t len;
        unsigned long stream;
        int type;

        if (n < pos + FRAME_HEADER_LEN) {
            *need = pos + FRAME_HEADER_LEN;
            return 0;
        }
        len = ((apr_size_t)b[pos] << 16) | ((apr_size_t)b[pos + 1] << 8)
              | b[pos + 2];
        type = b[pos + 3];
        stream = (((unsigned long)b[pos + 5] & 0x7f) << 24)
                 | ((unsigned long)b[pos + 6] << 16)
                 | ((unsigned long)b[pos + 7] << 8) | b[pos + 8];
        if (len > FRAME_MAX_PAYLOAD) {
            return -1;
        }
        if (n - pos - FRAME_HEADER_LEN < len) {
            *need = pos + FRAME_HEADER_LEN + len;
            return 0;
        }
        pos += FRAME_HEADER_LEN;
        switch (type) {
        case FRAME_HEADERS:
            if (stream == 0) {
                return -1;
            }
            return first_block(b, n, pos, len, scratch, host, need, open);
        case FRAME_PRIORITY:
        case FRAME_SETTINGS:
        case FRAME_PING:
        case FRAME_WINDOW_UPDATE:
            break;
        default:
            /* Unknown extension frames are ignored by HTTP/2 (RFC 9113,
             * 4.1); known ones (DATA, RST_STREAM, GOAWAY, ...) cannot come
             * before a first request this parser would look at. */
            if (type <= FRAME_LAST_KNOWN) {
                return -1;
            }
            break;
        }
        pos += len;
    }
    return -1;
}
