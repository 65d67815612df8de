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

/* Unit tests of pc_h2c.c: the first request's host of a cleartext HTTP/2
 * connection, from untrusted bytes.  The Huffman decoder is checked
 * against RFC 7541's examples and against an encoder built here from the
 * RFC's code lengths; connection starts are built frame by frame, then
 * cut and corrupted (every read stays inside the copy it is given: run
 * under valgrind by `make valgrind`).  Prints one line per case, then
 * "N passed, N failed". */

#include "pc_h2c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expect.h"
#include "buf.h"

/* Code lengths of RFC 7541, Appendix B, symbol by symbol (256 is EOS). */
static const unsigned char code_len[257] = {
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    30
};

static unsigned long code_of[257];

/* Canonical codes from the lengths: by length, then by symbol. */
static void make_codes(void)
{
    unsigned long code = 0;
    int len, sym;

    for (len = 1; len <= 30; len++) {
        for (sym = 0; sym < 257; sym++) {
            if (code_len[sym] == len) {
                code_of[sym] = code++;
            }
        }
        code <<= 1;
    }
}


static void put_byte(buf_t *o, unsigned int v)
{
    o->b[o->n++] = (unsigned char)v;
}

static void huff_encode(buf_t *o, const char *s, size_t n)
{
    unsigned long long acc = 0;
    int bits = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        int sym = (unsigned char)s[i];

        acc = (acc << code_len[sym]) | code_of[sym];
        bits += code_len[sym];
        while (bits >= 8) {
            put_byte(o, (unsigned int)(acc >> (bits - 8)) & 0xff);
            bits -= 8;
        }
    }
    if (bits > 0) {
        put_byte(o, (unsigned int)((acc << (8 - bits))
                                   | ((1u << (8 - bits)) - 1)) & 0xff);
    }
}

/* An HPACK integer with a prefix of 'prefix' bits; 'high' the bits above. */
static void put_int(buf_t *o, unsigned int high, int prefix, size_t v)
{
    size_t limit = ((size_t)1 << prefix) - 1;

    if (v < limit) {
        put_byte(o, high | (unsigned int)v);
        return;
    }
    put_byte(o, high | (unsigned int)limit);
    v -= limit;
    while (v >= 128) {
        put_byte(o, (unsigned int)(v & 0x7f) | 0x80);
        v >>= 7;
    }
    put_byte(o, (unsigned int)v);
}

static void put_str(buf_t *o, const char *s, int huffman)
{
    if (huffman) {
        buf_t h;

        h.n = 0;
        huff_encode(&h, s, strlen(s));
        put_int(o, 0x80, 7, h.n);
        put(o, h.b, h.n);
    }
    else {
        put_int(o, 0, 7, strlen(s));
        put(o, s, strlen(s));
    }
}

/* A literal field without indexing: name by static index, or by literal
 * (index 0). */
static void field(buf_t *o, size_t index, const char *name,
                  const char *value, int huffman)
{
    put_int(o, 0x00, 4, index);
    if (index == 0) {
        put_str(o, name, huffman);
    }
    put_str(o, value, huffman);
}

static void frame(buf_t *o, int type, int flags, unsigned long stream,
                  const buf_t *payload)
{
    put_byte(o, (unsigned int)(payload->n >> 16) & 0xff);
    put_byte(o, (unsigned int)(payload->n >> 8) & 0xff);
    put_byte(o, (unsigned int)payload->n & 0xff);
    put_byte(o, (unsigned int)type);
    put_byte(o, (unsigned int)flags);
    put_byte(o, (unsigned int)(stream >> 24) & 0x7f);
    put_byte(o, (unsigned int)(stream >> 16) & 0xff);
    put_byte(o, (unsigned int)(stream >> 8) & 0xff);
    put_byte(o, (unsigned int)stream & 0xff);
    put(o, payload->b, payload->n);
}

/* What curl (nghttp2) sends: preface, SETTINGS, WINDOW_UPDATE, HEADERS
 * of stream 1 with :method GET (indexed), :scheme http, :path, then
 * 'block' (the fields under test), then user-agent. */
static void start(buf_t *o, const buf_t *block, int flags)
{
    buf_t p;

    o->n = 0;
    put(o, PC_H2C_PREFACE, PC_H2C_PREFACE_LEN);
    p.n = 0;
    put(&p, "\x00\x03\x00\x00\x00\x64\x00\x04\x00\x01\x00\x00", 12);
    frame(o, 4, 0, 0, &p);
    p.n = 0;
    put(&p, "\x00\x00\xff\xff", 4);
    frame(o, 8, 0, 0, &p);
    p.n = 0;
    if (flags & 0x8) {
        put_byte(&p, 3);                       /* pad length */
    }
    if (flags & 0x20) {
        put(&p, "\x00\x00\x00\x00\x0f", 5);     /* priority */
    }
    put_byte(&p, 0x82);                        /* :method GET */
    put_byte(&p, 0x86);                        /* :scheme http */
    field(&p, 4, NULL, "/index.html", 1);      /* :path */
    put(&p, block->b, block->n);
    field(&p, 58, NULL, "curl/7.88.1", 1);     /* user-agent */
    if (flags & 0x8) {
        put(&p, "\0\0\0", 3);
    }
    frame(o, 1, flags, 1, &p);
}

/* What the last parse said of an open header block. */
static int last_open;

static int parse(const buf_t *o, size_t n, char *host, size_t *need)
{
    /* A copy of exactly n bytes: reading past it is valgrind's to see. */
    unsigned char *copy = malloc(n ? n : 1);
    unsigned char *scratch = malloc(n ? n : 1);
    int rv, open;

    memcpy(copy, o->b, n);
    rv = pc_h2c_parse(copy, n, scratch, host, need, &open);
    last_open = open;
    free(copy);
    free(scratch);
    return rv;
}

/* start() with the HEADERS frame's header block cut at 'at': HEADERS
 * without END_HEADERS, then CONTINUATION frames of 'piece' bytes each
 * on stream 'stream', the last with END_HEADERS. */
static void start_continued(buf_t *o, const buf_t *block, size_t at,
                            size_t piece, unsigned long stream)
{
    buf_t whole, p;
    size_t hdr, len, pos;

    start(&whole, block, 0x4);
    hdr = whole.n;                 /* find the HEADERS frame: the last */
    len = 0;
    for (pos = PC_H2C_PREFACE_LEN; pos < whole.n; pos += 9 + len) {
        len = ((size_t)whole.b[pos] << 16) | ((size_t)whole.b[pos + 1] << 8)
              | whole.b[pos + 2];
        if (whole.b[pos + 3] == 1) {
            hdr = pos;
        }
    }
    len = ((size_t)whole.b[hdr] << 16) | ((size_t)whole.b[hdr + 1] << 8)
          | whole.b[hdr + 2];
    o->n = 0;
    put(o, whole.b, hdr);
    p.n = 0;
    put(&p, whole.b + hdr + 9, at);
    frame(o, 1, 0, 1, &p);
    for (pos = at; pos < len; pos += piece) {
        size_t k = len - pos < piece ? len - pos : piece;

        p.n = 0;
        put(&p, whole.b + hdr + 9 + pos, k);
        frame(o, 9, pos + k == len ? 0x4 : 0, stream, &p);
    }
}

static int host_is(const buf_t *block, int flags, const char *want)
{
    buf_t o;
    char host[PC_H2C_MAX + 1];
    size_t need = 0;

    start(&o, block, flags);
    return parse(&o, o.n, host, &need) == 1 && strcmp(host, want) == 0;
}

static int gives_up(const buf_t *block, int flags)
{
    buf_t o;
    char host[PC_H2C_MAX + 1];
    size_t need = 0;

    start(&o, block, flags);
    return parse(&o, o.n, host, &need) == -1;
}

/* pc_h2c_huffman's result for the bytes written in hex in 'hex' (at
 * most 64), decoded into 'out' (64 bytes). */
static int huff_len(const char *hex, char *out)
{
    unsigned char in[64];
    size_t n = 0;

    while (hex[0] && hex[1] && n < sizeof(in)) {
        unsigned int v;

        sscanf(hex, "%2x", &v);
        in[n++] = (unsigned char)v;
        hex += 2;
    }
    return pc_h2c_huffman(in, n, out, 64);
}

static int huff_is(const char *hex, const char *want)
{
    char out[64];
    int len = huff_len(hex, out);

    return len == (int)strlen(want) && memcmp(out, want, (size_t)len) == 0;
}


static void huffman_cases(void)
{
    char all[256], out[256];
    buf_t o;
    int i, ok;

    /* RFC 7541, C.4.1 to C.4.3. */
    expect("RFC 7541 C.4.1 www.example.com",
           huff_is("f1e3c2e5f23a6ba0ab90f4ff", "www.example.com"));
    expect("RFC 7541 C.4.2 no-cache", huff_is("a8eb10649cbf", "no-cache"));
    expect("RFC 7541 C.4.3 custom-key",
           huff_is("25a849e95ba97d7f", "custom-key"));
    expect("RFC 7541 C.4.3 custom-value",
           huff_is("25a849e95bb8e8b4bf", "custom-value"));

    for (i = 0; i < 256; i++) {
        all[i] = (char)i;
    }
    o.n = 0;
    huff_encode(&o, all, 256);
    ok = pc_h2c_huffman(o.b, o.n, out, sizeof(out)) == 256
         && memcmp(out, all, 256) == 0;
    expect("every byte value round-trips", ok);
    expect("no room: refused",
           pc_h2c_huffman(o.b, o.n, out, 255) == -1);
    expect("padding of zeros: refused",
           huff_len("f1e3c2e5f23a6ba0ab90f400", out) == -1);
    expect("a whole byte of padding: refused",
           huff_len("a8eb10649cbfff", out) == -1);
    /* EOS (30 ones) inside the string. */
    expect("EOS in the string: refused", huff_len("fffffffc", out) == -1);
}

/* :authority values that are no host: the parser gives up. */
static const struct {
    const char *name, *value;
} bad_hosts[] = {
    { "userinfo: given up", "user@b.test" },
    { "bad port: given up", "b.test:80x" },
    { "space: given up", "b test" },
    { "empty port: given up", "b.test:" },
    { "unclosed IPv6 literal: given up", "[::1" },
    { "path: given up", "b.test/x" },
};

static void host_cases(void)
{
    buf_t blk;
    size_t i;

    blk.n = 0;
    field(&blk, 1, NULL, "b.test:8080", 1);
    expect(":authority (indexed name, Huffman)", host_is(&blk, 0x4 | 0x1,
                                                         "b.test"));
    blk.n = 0;
    field(&blk, 1, NULL, "B.Test", 0);
    expect(":authority (plain)", host_is(&blk, 0x4, "B.Test"));
    blk.n = 0;
    field(&blk, 0, ":authority", "c.test", 1);
    expect(":authority (literal name)", host_is(&blk, 0x4, "c.test"));
    blk.n = 0;
    put_int(&blk, 0x40, 6, 1);                 /* with indexing */
    put_str(&blk, "d.test:80", 1);
    expect(":authority with incremental indexing",
           host_is(&blk, 0x4, "d.test"));
    blk.n = 0;
    field(&blk, 38, NULL, "e.test", 1);
    expect("host alone", host_is(&blk, 0x4, "e.test"));
    blk.n = 0;
    field(&blk, 0, "host", "f.test", 0);
    field(&blk, 1, NULL, "g.test", 0);
    expect(":authority before host", host_is(&blk, 0x4, "g.test"));
    blk.n = 0;
    field(&blk, 1, NULL, "", 0);
    field(&blk, 38, NULL, "h.test", 0);
    expect("empty :authority: host", host_is(&blk, 0x4, "h.test"));
    blk.n = 0;
    expect("neither: empty host", host_is(&blk, 0x4, ""));
    blk.n = 0;
    field(&blk, 1, NULL, "[::1]:8080", 1);
    expect("IPv6 literal", host_is(&blk, 0x4, "[::1]"));
    blk.n = 0;
    field(&blk, 1, NULL, "p.test", 1);
    expect("padded and with priority", host_is(&blk, 0x4 | 0x8 | 0x20,
                                               "p.test"));
    blk.n = 0;
    put_int(&blk, 0x20, 5, 0);                 /* table size update */
    field(&blk, 1, NULL, "t.test", 1);
    expect("after a table size update", host_is(&blk, 0x4, "t.test"));

    blk.n = 0;
    field(&blk, 1, NULL, "b.test", 1);
    {
        buf_t o;
        char host[PC_H2C_MAX + 1];
        size_t need = 0, at, cut;
        int all = 1;

        start(&o, &blk, 0);
        expect("no END_HEADERS yet: wait for the next frame",
               parse(&o, o.n, host, &need) == 0 && need == o.n + 9);
        expect("... with the header block open (no wait for SETTINGS)",
               last_open == 1);
        start(&o, &blk, 0x4);
        expect("before HEADERS: no header block open",
               parse(&o, o.n - 20, host, &need) == 0 && last_open == 0);
        for (at = 0; at < 20; at++) {
            start_continued(&o, &blk, at, 1000, 1);
            if (parse(&o, o.n, host, &need) != 1
                || strcmp(host, "b.test") != 0) {
                all = 0;
            }
        }
        expect("header block in HEADERS + CONTINUATION: host found", all);
        start_continued(&o, &blk, 1, 1, 1);
        expect("header block in one-byte CONTINUATION frames: host found",
               parse(&o, o.n, host, &need) == 1
               && strcmp(host, "b.test") == 0);
        all = 1;
        for (cut = 0; cut < o.n; cut++) {
            need = 0;
            if (parse(&o, cut, host, &need) != 0 || need <= cut
                || need > o.n) {
                all = 0;
            }
        }
        expect("every cut of a continued block: wait, for more bytes", all);
        start_continued(&o, &blk, 3, 1000, 3);
        expect("CONTINUATION of another stream: given up",
               parse(&o, o.n, host, &need) == -1);
        start_continued(&o, &blk, 3, 1000, 1);
        {
            buf_t bad = o;
            size_t last = 0, len = 0, pos;

            for (pos = PC_H2C_PREFACE_LEN; pos < bad.n; pos += 9 + len) {
                len = ((size_t)bad.b[pos] << 16)
                      | ((size_t)bad.b[pos + 1] << 8) | bad.b[pos + 2];
                last = pos;
            }
            bad.b[last + 3] = 0;                       /* DATA, not CONT. */
            expect("another frame where CONTINUATION must come: given up",
                   parse(&bad, bad.n, host, &need) == -1);
        }
    }
    for (i = 0; i < sizeof(bad_hosts) / sizeof(bad_hosts[0]); i++) {
        blk.n = 0;
        field(&blk, 1, NULL, bad_hosts[i].value, 0);
        expect(bad_hosts[i].name, gives_up(&blk, 0x4));
    }
    blk.n = 0;
    field(&blk, 1, NULL, "a.test", 0);
    field(&blk, 1, NULL, "b.test", 0);
    expect("two :authority: given up", gives_up(&blk, 0x4));
    blk.n = 0;
    put_byte(&blk, 0x80 | 62);                 /* dynamic table */
    expect("dynamic table reference: given up", gives_up(&blk, 0x4));
    blk.n = 0;
    put_byte(&blk, 0x80);                      /* index 0 */
    expect("indexed field 0: given up", gives_up(&blk, 0x4));
}

static void frame_cases(void)
{
    buf_t blk, o, p;
    char host[PC_H2C_MAX + 1];
    size_t cut, need;
    int all;

    blk.n = 0;
    field(&blk, 1, NULL, "b.test", 1);
    start(&o, &blk, 0x4);
    all = 1;
    for (cut = 0; cut < o.n; cut++) {
        need = 0;
        if (parse(&o, cut, host, &need) != 0 || need <= cut || need > o.n) {
            all = 0;
        }
    }
    expect("every cut-short start: wait, for more bytes than there are",
           all);

    memcpy(o.b + 10, "1.1", 3);
    expect("not the preface", parse(&o, o.n, host, &need) == -1);
    expect("not the preface, first bytes", parse(&o, 12, host, &need) == -1);

    o.n = 0;
    put(&o, PC_H2C_PREFACE, PC_H2C_PREFACE_LEN);
    p.n = 0;
    put(&p, "x", 1);
    frame(&o, 0, 0, 1, &p);                    /* DATA first */
    expect("DATA before HEADERS: given up",
           parse(&o, o.n, host, &need) == -1);

    o.n = 0;
    put(&o, PC_H2C_PREFACE, PC_H2C_PREFACE_LEN);
    frame(&o, 0xfa, 0, 0, &p);                 /* an extension frame */
    p.n = 0;
    field(&p, 1, NULL, "x.test", 1);
    frame(&o, 1, 0x4, 1, &p);
    expect("unknown frame type skipped",
           parse(&o, o.n, host, &need) == 1 && strcmp(host, "x.test") == 0);

    o.n = 0;
    put(&o, PC_H2C_PREFACE, PC_H2C_PREFACE_LEN);
    put(&o, "\x00\x40\x01\x04\x00\x00\x00\x00\x00", 9);  /* 16385 */
    expect("frame over 16 KiB: given up",
           parse(&o, o.n, host, &need) == -1);

    start(&o, &blk, 0x4);
    all = 1;
    for (cut = PC_H2C_PREFACE_LEN; cut < o.n; cut++) {
        unsigned char keep = o.b[cut];
        int v;

        for (v = 0; v < 256; v += 17) {
            o.b[cut] = (unsigned char)v;
            need = 0;
            switch (parse(&o, o.n, host, &need)) {
            case 1:
                all &= strlen(host) <= PC_H2C_MAX;
                break;
            case 0:
                all &= need > o.n && need <= PC_H2C_PREFACE_LEN + 16 * 9
                                             + 16 * 16393;
                break;
            }
        }
        o.b[cut] = keep;
    }
    expect("corrupted bytes: a host within the limit, or a wait", all);
}

static void settings_ack_cases(void)
{
    buf_t o, p;
    size_t at;

    o.n = 0;
    put(&o, PC_H2C_PREFACE, PC_H2C_PREFACE_LEN);
    p.n = 0;
    put(&p, "\x00\x03\x00\x00\x00\x64", 6);
    frame(&o, 4, 0, 0, &p);                    /* the client's SETTINGS */
    at = o.n;
    p.n = 0;
    frame(&o, 4, 0x1, 0, &p);                  /* its ACK of ours */
    p.n = 0;
    field(&p, 1, NULL, "b.test", 1);
    frame(&o, 1, 0x4, 1, &p);
    expect("SETTINGS ACK found where it starts",
           pc_h2c_settings_ack(o.b, o.n, at) == (long)at);
    expect("SETTINGS ACK before 'from': not taken",
           pc_h2c_settings_ack(o.b, o.n, at + 1) == -1);
    expect("SETTINGS ACK cut short: not there yet",
           pc_h2c_settings_ack(o.b, at + 5, 0) == -1);
    expect("a SETTINGS frame without ACK is not one",
           pc_h2c_settings_ack(o.b, at, 0) == -1);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    make_codes();
    huffman_cases();
    host_cases();
    frame_cases();
    settings_ack_cases();
    return expect_summary();
}
