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

/* pc_channel.c: see pc_channel.h.  The traps this file handles:
 *  - a zero-byte payload: the header is always sent, so a record is
 *    never empty and recvmsg returning 0 means only EOF;
 *  - MSG_CTRUNC / MSG_TRUNC: the kernel dropped descriptors or bytes;
 *    the record is refused and whatever arrived is closed;
 *  - descriptor count from cmsg_len, not from CMSG_SPACE (which holds
 *    two ints on LP64): exactly one is accepted, extra ones closed;
 *  - msghdr re-armed for every call; EINTR retried; EAGAIN reported;
 *  - MSG_NOSIGNAL: a dead receiver is EPIPE, not a signal;
 *  - MSG_CMSG_CLOEXEC: no window in which a fork+exec (a CGI) inherits
 *    a received descriptor.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "pc_channel.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int pc_chan_pair(int sv[2], int sndbuf)
{
    int i;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK,
                   0, sv) == -1) {
        return errno;
    }
    for (i = 0; sndbuf > 0 && i < 2; i++) {
        /* FORCE works for root (the parent) beyond wmem_max; fall back
         * to the plain option for anyone else. */
        if (setsockopt(sv[i], SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf,
                       sizeof(sndbuf)) == -1) {
            setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sndbuf,
                       sizeof(sndbuf));
        }
    }
    return 0;
}

static long long elapsed_ms(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)(now.tv_sec - since->tv_sec) * 1000
           + (now.tv_nsec - since->tv_nsec) / 1000000;
}

static int wait_writable(int chan, int timeout_ms)
{
    struct pollfd p;
    int rc;

    p.fd = chan;
    p.events = POLLOUT;
    do {
        rc = poll(&p, 1, timeout_ms);
    } while (rc == -1 && errno == EINTR);
    if (rc == -1) {
        return errno;
    }
    if (rc == 0) {
        return ETIMEDOUT;
    }
    if (p.revents & (POLLERR | POLLHUP)) {
        return EPIPE;
    }
    return 0;
}

int pc_chan_send(int chan, int fd, unsigned hops, const struct iovec *iov,
                 int iovcnt, int timeout_ms)
{
    struct iovec v[1 + 8];
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr msg;
    struct cmsghdr *cm;
    pc_chan_hdr_t hdr;
    size_t total = 0;
    struct timespec start;
    int i, waited = 0;

    if (iovcnt < 0 || iovcnt > 8 || fd < 0) {
        return EINVAL;
    }
    for (i = 0; i < iovcnt; i++) {
        total += iov[i].iov_len;
        v[1 + i] = iov[i];
    }
    if (total > PC_CHAN_MAX_PAYLOAD || hops > 0xffff) {
        return EMSGSIZE;
    }
    memset(&hdr, 0, sizeof(hdr));
    hdr.magic = PC_CHAN_MAGIC;
    hdr.version = PC_CHAN_VERSION;
    hdr.hops = (uint16_t)hops;
    hdr.len = (uint32_t)total;
    v[0].iov_base = &hdr;
    v[0].iov_len = sizeof(hdr);

    clock_gettime(CLOCK_MONOTONIC, &start);
    memset(&ctl, 0, sizeof(ctl));
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = v;
    msg.msg_iovlen = 1 + iovcnt;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof(ctl.buf);
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));

    for (;;) {
        ssize_t n = sendmsg(chan, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        long long spent;
        int rv, left;

        if (n >= 0) {
            /* SEQPACKET: all or nothing. */
            return (size_t)n == sizeof(hdr) + total ? 0 : EIO;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == ECONNRESET) {
            /* The receiving end was closed with records unread. */
            return EPIPE;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return errno;
        }
        /* Other senders share this end: the room we were woken for may
         * be taken again.  Wait on until the deadline, not just once. */
        spent = elapsed_ms(&start);
        left = spent >= timeout_ms ? 0 : timeout_ms - (int)spent;
        if (waited && left == 0) {
            return ETIMEDOUT;
        }
        if ((rv = wait_writable(chan, left)) != 0) {
            return rv;
        }
        waited = 1;
    }
}

/* Closes every descriptor a control message carried. */
static void close_all_fds(struct msghdr *msg)
{
    struct cmsghdr *cm;

    for (cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
        size_t n, i;

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS
            || cm->cmsg_len < CMSG_LEN(0)) {
            continue;
        }
        n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            close(fd);
        }
    }
}

/* The one descriptor of a well-formed record, or -1. */
static int single_fd(struct msghdr *msg)
{
    struct cmsghdr *cm = CMSG_FIRSTHDR(msg);
    int fd;

    if (cm == NULL || CMSG_NXTHDR(msg, cm) != NULL
        || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS
        || cm->cmsg_len != CMSG_LEN(sizeof(int))) {
        return -1;
    }
    memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    return fd;
}

/* The kernel cuts the control data short, dropping the descriptor, when
 * the receiver has no descriptor free to put it in: is that why? */
static int out_of_descriptors(int chan)
{
    int spare = fcntl(chan, F_DUPFD_CLOEXEC, 0);

    if (spare >= 0) {
        close(spare);
        return 0;
    }
    return errno == EMFILE || errno == ENFILE;
}

static int header_ok(const pc_chan_hdr_t *hdr, size_t got)
{
    return got >= sizeof(*hdr)
           && hdr->magic == PC_CHAN_MAGIC
           && hdr->version == PC_CHAN_VERSION
           && hdr->reserved == 0
           && hdr->len <= PC_CHAN_MAX_PAYLOAD
           && hdr->len == got - sizeof(*hdr);
}

int pc_chan_recv(int chan, int *fd, unsigned *hops, char *buf,
                 size_t bufsize, size_t *len)
{
    pc_chan_hdr_t hdr;
    struct iovec v[2];
    union {
        struct cmsghdr align;
        /* Room for more than one descriptor, so that a record carrying
         * several is seen (and refused) rather than silently cut. */
        char buf[CMSG_SPACE(sizeof(int) * 4)];
    } ctl;
    struct msghdr msg;
    ssize_t n;

    *fd = -1;
    *len = 0;
    for (;;) {
        memset(&msg, 0, sizeof(msg));
        v[0].iov_base = &hdr;
        v[0].iov_len = sizeof(hdr);
        v[1].iov_base = buf;
        v[1].iov_len = bufsize;
        msg.msg_iov = v;
        msg.msg_iovlen = 2;
        msg.msg_control = ctl.buf;
        msg.msg_controllen = sizeof(ctl.buf);
        n = recvmsg(chan, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n >= 0 || errno != EINTR) {
            break;
        }
    }
    if (n == -1) {
        return (errno == EWOULDBLOCK) ? EAGAIN : errno;
    }
    if (n == 0) {
        /* A header is always sent, so 0 bytes is end of file -- unless a
         * hostile sender sent an empty record, which SEQPACKET delivers.
         * End of file carries no descriptor and comes only once the peer
         * has shut down. */
        struct pollfd p;
        int carried = msg.msg_controllen > 0;

        close_all_fds(&msg);
        p.fd = chan;
        p.events = POLLRDHUP;
        p.revents = 0;
        if (carried || poll(&p, 1, 0) != 1
            || !(p.revents & (POLLRDHUP | POLLHUP))) {
            return EPROTO;
        }
        return EPIPE;
    }
    if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
        || !header_ok(&hdr, (size_t)n)
        || (*fd = single_fd(&msg)) == -1) {
        int lost = (msg.msg_flags & MSG_CTRUNC) && single_fd(&msg) == -1
                   && out_of_descriptors(chan);

        close_all_fds(&msg);
        *fd = -1;
        return lost ? EMFILE : EPROTO;
    }
    *hops = hdr.hops;
    *len = hdr.len;
    return 0;
}
