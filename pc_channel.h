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

/* pc_channel.h: a descriptor channel.  One record = a fixed header, up
 * to PC_CHAN_MAX_PAYLOAD bytes, and exactly one descriptor, carried by
 * one SOCK_SEQPACKET message.  Plain POSIX: no httpd, no APR, so that
 * it can be tested alone.  Functions return 0 or an errno value; they
 * never exit and never log.
 *
 * The receiver treats every record as hostile: a sender may be a
 * tenant's process.  A record that is not exactly well-formed is
 * refused with EPROTO and every descriptor it carried is closed.
 */

#ifndef PC_CHANNEL_H
#define PC_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define PC_CHAN_MAGIC   0x50434831u   /* "PCH1" */
#define PC_CHAN_VERSION 1

/* Largest payload: a request head at httpd's default limits (100
 * fields of 8190 bytes would be more, but such a head is refused by
 * the caller) plus the read-ahead httpd keeps. */
#define PC_CHAN_MAX_PAYLOAD (256 * 1024)

/* Send buffer to ask for: the kernel doubles the value, so one record of
 * the largest size still fits.  More only makes the channel slower
 * (measured with bench/chanbench.c). */
#define PC_CHAN_SNDBUF (PC_CHAN_MAX_PAYLOAD / 2 + 16 * 1024)

typedef struct pc_chan_hdr_t {
    uint32_t magic;
    uint16_t version;
    uint16_t hops;          /* times this connection was passed on */
    uint32_t len;           /* payload bytes after the header */
    uint32_t reserved;      /* zero */
} pc_chan_hdr_t;

/* A socketpair(AF_UNIX, SOCK_SEQPACKET) with both ends close-on-exec
 * and non-blocking.  sv[0] receives, sv[1] sends.  'sndbuf', if not 0,
 * is the send buffer to ask for (it bounds the largest record). */
int pc_chan_pair(int sv[2], int sndbuf);

/* Sends one record: header (hops), payload iov, descriptor 'fd'.
 * Waits at most 'timeout_ms' for room; ETIMEDOUT then.  The caller
 * keeps its copy of 'fd' either way. */
int pc_chan_send(int chan, int fd, unsigned hops, const struct iovec *iov,
                 int iovcnt, int timeout_ms);

/* Receives one record without waiting.  On 0: *fd is the descriptor
 * (close-on-exec), *len payload bytes are in buf, *hops is set.
 * EAGAIN: nothing queued.  EPROTO: a bad record was consumed and its
 * descriptors closed.  EPIPE: the channel is closed. */
int pc_chan_recv(int chan, int *fd, unsigned *hops, char *buf,
                 size_t bufsize, size_t *len);

#endif /* PC_CHANNEL_H */
