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

/* chanbench.c: the hand-off channel alone, beside the physical limit.
 *
 *   cc -O2 -Wall -Wextra -o chanbench bench/chanbench.c pc_channel.c
 *   ./chanbench [-t seconds] [-r repeats] [-b bytes] [-p pin]
 *
 * Two processes.  The sender passes, as fast as it can for -t seconds,
 * one record after another, each carrying -b payload bytes (default
 * 400, about a request head) and one descriptor (a connected loopback
 * TCP socket, as in perchild); the receiver takes each record and
 * closes the descriptor it got.  Two variants, run alternately -r
 * times each (in rotating order):
 *
 *   bare     socketpair(AF_UNIX, SOCK_SEQPACKET), blocking sendmsg and
 *            recvmsg with SCM_RIGHTS: the least the kernel lets one do;
 *   channel  pc_chan_pair / pc_chan_send / pc_chan_recv exactly as
 *            perchild uses them (same send buffer, same receive buffer
 *            size; the receiver polls when pc_chan_recv says EAGAIN,
 *            as a perchild worker waits in epoll_wait).
 *
 * and two that tell the code from the configuration apart:
 *
 *   bare_sndbuf     bare, with the channel's send buffer (SO_SNDBUF
 *                   as pc_handoff.c asks);
 *   channel_defbuf  channel, with the kernel's default send buffer
 *                   (pc_chan_pair(sv, 0)).
 *
 * and one that is not a stream but a relay, the kernel's part of a
 * hand-off as perchild makes it, wake-up included:
 *
 *   pingpong        one record (the same payload and one descriptor)
 *                   goes back and forth between the two processes over
 *                   two channels; each side waits in epoll_wait, takes
 *                   the record with pc_chan_recv, sends the descriptor
 *                   it got on with pc_chan_send and closes its copy.
 *                   Every record wakes a sleeping process: its rate is
 *                   hand-offs per second one after another, its CPU the
 *                   least a hand-off costs before httpd does anything.
 *
 * Per run it prints one line:
 *
 *   RESULT variant=bare rep=1 records=N seconds=S rate=R cpu_us=C
 *
 * rate is records received per second (from the first send until the
 * receiver has drained everything); cpu_us is user+system CPU of both
 * processes per record, in microseconds.  Then one MEDIAN line per
 * variant and RATIO lines (channel/bare is the one that counts).
 * -p 0 (default) leaves both processes to the scheduler, as perchild
 * does; -p 1 pins them to CPUs 0 and 1, -p 2 both to CPU 0.  Asserts nothing about speed;
 * exits non-zero only if a record is lost or the setup fails.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "../pc_channel.h"

#include <arpa/inet.h>
#include <sched.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* As pc_handoff.c: the channel's send buffer. */
#define CHAN_SNDBUF PC_CHAN_SNDBUF
#define RECV_BUF PC_CHAN_MAX_PAYLOAD

enum { BARE = 0, CHANNEL = 1, BARE_BIG = 2, CHANNEL_SMALL = 3,
       PINGPONG = 4, NVAR = 5 };
static const char *const names[] = { "bare", "channel", "bare_sndbuf",
                                     "channel_defbuf", "pingpong" };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double tv_us(const struct timeval *tv)
{
    return tv->tv_sec * 1e6 + tv->tv_usec;
}

static void die(const char *what)
{
    perror(what);
    exit(2);
}

/* A connected loopback TCP socket: the kind of descriptor perchild
 * passes.  Returns the accepted end; the other ends stay open (and are
 * leaked on purpose until exit). */
static int tcp_socket(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int l, c, a;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((l = socket(AF_INET, SOCK_STREAM, 0)) == -1
        || bind(l, (struct sockaddr *)&sa, sizeof(sa)) == -1
        || listen(l, 1) == -1
        || getsockname(l, (struct sockaddr *)&sa, &len) == -1
        || (c = socket(AF_INET, SOCK_STREAM, 0)) == -1
        || connect(c, (struct sockaddr *)&sa, sizeof(sa)) == -1
        || (a = accept(l, NULL, NULL)) == -1) {
        die("loopback socket");
    }
    close(l);
    return a;
}

/* ---- bare: blocking sendmsg / recvmsg -------------------------------- */

static int bare_send(int s, int fd, const char *payload, size_t len)
{
    struct iovec v;
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr msg;
    struct cmsghdr *cm;

    v.iov_base = (void *)payload;
    v.iov_len = len;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &v;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof(ctl.buf);
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    return sendmsg(s, &msg, MSG_NOSIGNAL) == (ssize_t)len ? 0 : errno;
}

/* 1: got one (closed), 0: end of file. */
static int bare_recv(int s, char *buf, size_t size)
{
    struct iovec v;
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr msg;
    struct cmsghdr *cm;
    ssize_t n;
    int fd;

    v.iov_base = buf;
    v.iov_len = size;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &v;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof(ctl.buf);
    do {
        n = recvmsg(s, &msg, MSG_CMSG_CLOEXEC);
    } while (n == -1 && errno == EINTR);
    if (n == -1) {
        die("recvmsg");
    }
    if (n == 0) {
        return 0;
    }
    cm = CMSG_FIRSTHDR(&msg);
    if (cm == NULL || cm->cmsg_type != SCM_RIGHTS) {
        fprintf(stderr, "bare: record without a descriptor\n");
        exit(2);
    }
    memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    close(fd);
    return 1;
}

/* ---- one run ---------------------------------------------------------- */

typedef struct {
    long records;
    double seconds;
    double cpu_us;          /* both processes, per record */
} result_t;

/* The receiver: counts records until end of file, then reports the
 * count on 'out'. */
static void receiver(int variant, int s, int out)
{
    char *buf = malloc(RECV_BUF);
    long n = 0;

    if (buf == NULL) {
        die("malloc");
    }
    if (variant == BARE || variant == BARE_BIG) {
        while (bare_recv(s, buf, RECV_BUF)) {
            n++;
        }
    }
    else {
        for (;;) {
            int fd, rv;
            unsigned hops;
            size_t len;

            rv = pc_chan_recv(s, &fd, &hops, buf, RECV_BUF, &len);
            if (rv == 0) {
                close(fd);
                n++;
            }
            else if (rv == EAGAIN) {
                struct pollfd p = { s, POLLIN, 0 };
                if (poll(&p, 1, -1) == -1 && errno != EINTR) {
                    die("poll");
                }
            }
            else if (rv == EPIPE) {
                break;
            }
            else {
                fprintf(stderr, "pc_chan_recv: %s\n", strerror(rv));
                exit(2);
            }
        }
    }
    if (write(out, &n, sizeof(n)) != sizeof(n)) {
        die("write");
    }
    _exit(0);
}

/* -p: 0 leaves placement to the scheduler; 1 puts the sender on CPU 0
 * and the receiver on CPU 1; 2 puts both on CPU 0. */
static int pin_mode;

static void pin(int cpu)
{
    cpu_set_t set;

    if (pin_mode == 0) {
        return;
    }
    CPU_ZERO(&set);
    CPU_SET(pin_mode == 2 ? 0 : cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) == -1) {
        die("sched_setaffinity");
    }
}

/* Waits for the other process's count on 'rep' and for its exit;
 * returns the CPU both processes used since 'ru0', in microseconds. */
static double collect(int rep, pid_t pid, long *got,
                      const struct rusage *ru0)
{
    struct rusage ru1, ruc;
    int status;

    if (read(rep, got, sizeof(*got)) != sizeof(*got)) {
        die("read");
    }
    if (wait4(pid, &status, 0, &ruc) == -1) {
        die("wait4");
    }
    getrusage(RUSAGE_SELF, &ru1);
    close(rep);
    return tv_us(&ru1.ru_utime) - tv_us(&ru0->ru_utime)
           + tv_us(&ru1.ru_stime) - tv_us(&ru0->ru_stime)
           + tv_us(&ruc.ru_utime) + tv_us(&ruc.ru_stime);
}

static result_t run(int variant, double seconds, size_t bytes, int tcpfd)
{
    int sv[2], rep[2];
    char *payload = malloc(bytes ? bytes : 1);
    struct rusage ru0;
    double cpu;
    struct iovec iov;
    long sent = 0, got = 0;
    double t0, t1, deadline;
    pid_t pid;
    result_t r;

    memset(payload, 'x', bytes ? bytes : 1);
    if (variant == BARE || variant == BARE_BIG) {
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
            die("socketpair");
        }
        if (variant == BARE_BIG) {
            int i, size = CHAN_SNDBUF;
            for (i = 0; i < 2; i++) {
                if (setsockopt(sv[i], SOL_SOCKET, SO_SNDBUFFORCE, &size,
                               sizeof(size)) == -1) {
                    setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &size,
                               sizeof(size));
                }
            }
        }
    }
    else {
        int rv = pc_chan_pair(sv, variant == CHANNEL ? CHAN_SNDBUF : 0);
        if (rv != 0) {
            errno = rv;
            die("pc_chan_pair");
        }
    }
    if (pipe(rep) == -1) {
        die("pipe");
    }
    getrusage(RUSAGE_SELF, &ru0);
    t0 = now();
    pid = fork();
    if (pid == -1) {
        die("fork");
    }
    if (pid == 0) {
        pin(1);
        close(sv[1]);
        close(rep[0]);
        receiver(variant, sv[0], rep[1]);
    }
    close(sv[0]);
    close(rep[1]);

    iov.iov_base = payload;
    iov.iov_len = bytes;
    deadline = t0 + seconds;
    for (;;) {
        int i, rv;

        for (i = 0; i < 256; i++) {
            if (variant == BARE || variant == BARE_BIG) {
                rv = bare_send(sv[1], tcpfd, payload, bytes);
            }
            else {
                rv = pc_chan_send(sv[1], tcpfd, 0, &iov, 1, 10000);
            }
            if (rv != 0) {
                fprintf(stderr, "%s send: %s\n", names[variant],
                        strerror(rv));
                exit(2);
            }
            sent++;
        }
        if (now() >= deadline) {
            break;
        }
    }
    close(sv[1]);
    cpu = collect(rep[0], pid, &got, &ru0);
    t1 = now();
    free(payload);
    if (got != sent) {
        fprintf(stderr, "%s: sent %ld, received %ld\n", names[variant], sent,
                got);
        exit(1);
    }
    r.records = got;
    r.seconds = t1 - t0;
    r.cpu_us = cpu / got;
    return r;
}

/* ---- pingpong: one record relayed, a wake-up per hop ----------------- */

/* Waits for the record on 'in', passes its descriptor on over 'out'
 * with the same payload, closes its copy.  Returns 0 at end of file. */
static int relay_once(int ep, int in, int out, char *buf, size_t *len)
{
    struct epoll_event ev;
    unsigned hops;
    struct iovec iov;
    int fd, rv;

    for (;;) {
        rv = pc_chan_recv(in, &fd, &hops, buf, RECV_BUF, len);
        if (rv == 0) {
            break;
        }
        if (rv == EPIPE) {
            return 0;
        }
        if (rv != EAGAIN) {
            fprintf(stderr, "pingpong recv: %s\n", strerror(rv));
            exit(2);
        }
        if (epoll_wait(ep, &ev, 1, -1) == -1 && errno != EINTR) {
            die("epoll_wait");
        }
    }
    iov.iov_base = buf;
    iov.iov_len = *len;
    (void)hops;     /* a relay, not a loop between pools */
    rv = out < 0 ? 0 : pc_chan_send(out, fd, 0, &iov, 1, 10000);
    close(fd);
    if (rv != 0 && rv != EPIPE) {
        fprintf(stderr, "pingpong send: %s\n", strerror(rv));
        exit(2);
    }
    return 1;
}

static int epoll_on(int fd)
{
    struct epoll_event ev;
    int ep = epoll_create1(EPOLL_CLOEXEC);

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    if (ep == -1 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
        die("epoll");
    }
    return ep;
}

static result_t run_pingpong(double seconds, size_t bytes, int tcpfd)
{
    int ab[2], ba[2], rep[2], ep, rv;
    char *buf = malloc(RECV_BUF);
    struct rusage ru0;
    double cpu;
    struct iovec iov;
    long hops = 0, got = 0;
    double t0, t1, deadline;
    size_t len = bytes;
    pid_t pid;
    result_t r;

    if (buf == NULL || pipe(rep) == -1) {
        die("setup");
    }
    memset(buf, 'x', bytes);
    if ((rv = pc_chan_pair(ab, CHAN_SNDBUF)) != 0
        || (rv = pc_chan_pair(ba, CHAN_SNDBUF)) != 0) {
        errno = rv;
        die("pc_chan_pair");
    }
    getrusage(RUSAGE_SELF, &ru0);
    t0 = now();
    if ((pid = fork()) == -1) {
        die("fork");
    }
    if (pid == 0) {
        pin(1);
        close(ab[1]);
        close(ba[0]);
        close(rep[0]);
        ep = epoll_on(ab[0]);
        while (relay_once(ep, ab[0], ba[1], buf, &len)) {
            got++;
        }
        if (write(rep[1], &got, sizeof(got)) != sizeof(got)) {
            die("write");
        }
        _exit(0);
    }
    close(ab[0]);
    close(ba[1]);
    close(rep[1]);
    ep = epoll_on(ba[0]);
    iov.iov_base = buf;
    iov.iov_len = bytes;
    if ((rv = pc_chan_send(ab[1], tcpfd, 0, &iov, 1, 10000)) != 0) {
        fprintf(stderr, "pingpong send: %s\n", strerror(rv));
        exit(2);
    }
    deadline = t0 + seconds;
    /* The last record stops here: the other side has seen as many. */
    for (;;) {
        int more = now() < deadline;

        relay_once(ep, ba[0], more ? ab[1] : -1, buf, &len);
        hops++;
        if (!more) {
            break;
        }
    }
    close(ab[1]);
    cpu = collect(rep[0], pid, &got, &ru0);
    t1 = now();
    close(ba[0]);
    close(ep);
    free(buf);
    if (got != hops) {
        fprintf(stderr, "pingpong: %ld hops, the other side saw %ld\n",
                hops, got);
        exit(1);
    }
    hops += got;
    r.records = hops;
    r.seconds = t1 - t0;
    r.cpu_us = cpu / hops;
    return r;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    double seconds = 1.0;
    int repeats = 5, opt, i, v;
    size_t bytes = 400;
    double rate[NVAR][64], cpu[NVAR][64], mrate[NVAR], mcpu[NVAR];
    int tcpfd;

    while ((opt = getopt(argc, argv, "t:r:b:p:")) != -1) {
        switch (opt) {
        case 't': seconds = atof(optarg); break;
        case 'r': repeats = atoi(optarg); break;
        case 'b': bytes = (size_t)atol(optarg); break;
        case 'p': pin_mode = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: %s [-t seconds] [-r repeats] "
                    "[-b bytes] [-p 0|1|2]\n", argv[0]);
            return 2;
        }
    }
    if (repeats < 1 || repeats > 64 || seconds <= 0
        || bytes > PC_CHAN_MAX_PAYLOAD || pin_mode < 0 || pin_mode > 2) {
        fprintf(stderr, "chanbench: bad arguments\n");
        return 2;
    }
    tcpfd = tcp_socket();
    pin(0);
    /* A short warm-up of each, not reported. */
    for (v = 0; v < NVAR; v++) {
        if (v == PINGPONG) {
            run_pingpong(0.1, bytes, tcpfd);
        }
        else {
            run(v, 0.1, bytes, tcpfd);
        }
    }
    for (i = 0; i < repeats; i++) {
        for (v = 0; v < NVAR; v++) {
            /* Rotate which goes first, so that no variant always
             * follows the same one. */
            int var = (v + i) % NVAR;
            result_t r = var == PINGPONG
                         ? run_pingpong(seconds, bytes, tcpfd)
                         : run(var, seconds, bytes, tcpfd);

            rate[var][i] = r.records / r.seconds;
            cpu[var][i] = r.cpu_us;
            printf("RESULT variant=%s rep=%d records=%ld seconds=%.3f "
                   "rate=%.0f cpu_us=%.3f\n", names[var], i + 1, r.records,
                   r.seconds, rate[var][i], r.cpu_us);
            fflush(stdout);
        }
    }
    for (v = 0; v < NVAR; v++) {
        mrate[v] = median(rate[v], repeats);
        mcpu[v] = median(cpu[v], repeats);
        printf("MEDIAN variant=%s bytes=%zu rate=%.0f cpu_us=%.3f\n",
               names[v], bytes, mrate[v], mcpu[v]);
    }
    printf("RATIO channel/bare rate=%.3f cpu=%.3f\n",
           mrate[CHANNEL] / mrate[BARE], mcpu[CHANNEL] / mcpu[BARE]);
    printf("RATIO channel_defbuf/bare rate=%.3f cpu=%.3f\n",
           mrate[CHANNEL_SMALL] / mrate[BARE],
           mcpu[CHANNEL_SMALL] / mcpu[BARE]);
    printf("RATIO channel/bare_sndbuf rate=%.3f cpu=%.3f\n",
           mrate[CHANNEL] / mrate[BARE_BIG], mcpu[CHANNEL] / mcpu[BARE_BIG]);
    return 0;
}
