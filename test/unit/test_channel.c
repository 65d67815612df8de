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

/* test_channel.c: unit tests of pc_channel.c, plain C, no framework.
 *
 *   cc -Wall -Wextra -O1 -g -o test_channel test/unit/test_channel.c \
 *      pc_channel.c
 *   ./test_channel [substring...]      (runs the tests whose name matches)
 *
 * One line per test ("ok" or "FAIL"), failed checks on stderr, then the
 * line "N passed, N failed"; the exit status is 1 if any test failed.
 * Every test must leave the set of open descriptors as it found it.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* This file defines poll() and sendmsg() (see test 12): no inline
 * wrappers for them from the headers. */
#undef _FORTIFY_SOURCE
#include "../../pc_channel.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* The harness                                                         */

static int t_fail;              /* failed checks in the current test */
static const char *t_name = "";
static const char *t_ctx = "";  /* a sub-case name, printed with failures */

static void fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "  [%s%s%s] %s:%d: ", t_name, *t_ctx ? ": " : "",
            t_ctx, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    t_fail++;
}

#define CHECK(c) \
    do { \
        if (!(c)) { \
            fail_at(__FILE__, __LINE__, "CHECK(%s) failed", #c); \
        } \
    } while (0)

#define CHECK_INT(a, op, b) \
    do { \
        long long a_ = (long long)(a), b_ = (long long)(b); \
        if (!(a_ op b_)) { \
            fail_at(__FILE__, __LINE__, "CHECK(%s %s %s) failed: %lld vs %lld", \
                    #a, #op, #b, a_, b_); \
        } \
    } while (0)

/* For functions returning 0 or an errno value. */
#define CHECK_RV(expr, want) \
    do { \
        int got_ = (expr), want_ = (want); \
        if (got_ != want_) { \
            fail_at(__FILE__, __LINE__, "%s returned %d (%s), expected %d (%s)", \
                    #expr, got_, got_ ? strerror(got_) : "0", want_, \
                    want_ ? strerror(want_) : "0"); \
        } \
    } while (0)

struct fd_snap;
static int count_fds(struct fd_snap *snap);

/* A child calls child_mark() once it has closed what it does not need;
 * child_exit() then checks that it closed everything it opened since,
 * and reports through the exit status. */
static int child_base = -1;

static void child_mark(void)
{
    child_base = count_fds(NULL);
}

static void child_exit(void)
{
    if (child_base >= 0) {
        int now = count_fds(NULL);

        if (now != child_base) {
            fail_at(__FILE__, __LINE__, "child descriptors: %d after "
                    "setup, %d at exit", child_base, now);
        }
    }
    _exit(t_fail ? 1 : 0);
}

static void check_child(pid_t pid, const char *what)
{
    int status = 0;
    pid_t r;

    do {
        r = waitpid(pid, &status, 0);
    } while (r == -1 && errno == EINTR);
    if (r != pid) {
        fail_at(__FILE__, __LINE__, "waitpid(%s): %s", what, strerror(errno));
    }
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fail_at(__FILE__, __LINE__, "child %s failed: %s %d", what,
                WIFEXITED(status) ? "exit status" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
}

static pid_t fork_child(void)
{
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid == -1) {
        fail_at(__FILE__, __LINE__, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        alarm(30);      /* a hung child dies; the parent sees it */
    }
    return pid;
}

/* ------------------------------------------------------------------ */
/* Descriptor accounting                                               */

#define FD_SNAP_MAX 4096

struct fd_snap {
    int n;
    unsigned char open[FD_SNAP_MAX];
};
typedef struct fd_snap fd_snap;

/* Counts /proc/self/fd entries (the directory's own descriptor is one of
 * them both times, so comparisons are fair). */
static int count_fds(struct fd_snap *snap)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (snap) {
        memset(snap, 0, sizeof(*snap));
    }
    if (d == NULL) {
        fail_at(__FILE__, __LINE__, "opendir /proc/self/fd: %s",
                strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        int fd;

        if (e->d_name[0] == '.') {
            continue;
        }
        n++;
        fd = atoi(e->d_name);
        if (snap && fd >= 0 && fd < FD_SNAP_MAX && fd != dirfd(d)) {
            snap->open[fd] = 1;
        }
    }
    closedir(d);
    if (snap) {
        snap->n = n;
    }
    return n;
}

static void report_fd_diff(const fd_snap *a, const fd_snap *b)
{
    int fd;

    for (fd = 0; fd < FD_SNAP_MAX; fd++) {
        if (a->open[fd] != b->open[fd]) {
            char path[64], target[256];
            ssize_t n;

            snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
            n = readlink(path, target, sizeof(target) - 1);
            target[n > 0 ? n : 0] = '\0';
            fprintf(stderr, "    fd %d %s %s\n", fd,
                    b->open[fd] ? "leaked:" : "closed by the test:",
                    target);
        }
    }
}

/* The number the next new descriptor would get. */
static int lowest_free_fd(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        close(fd);
    }
    return fd;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fill_pattern(unsigned char *p, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 12345u;
    size_t i;

    for (i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (unsigned char)(x >> 16);
    }
}

static int pattern_ok(const unsigned char *p, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 12345u;
    size_t i;

    for (i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        if (p[i] != (unsigned char)(x >> 16)) {
            return 0;
        }
    }
    return 1;
}

static int same_file(int a, int b)
{
    struct stat sa, sb;

    if (fstat(a, &sa) == -1 || fstat(b, &sb) == -1) {
        return 0;
    }
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int is_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFD);

    return fl != -1 && (fl & FD_CLOEXEC);
}

static int fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

/* A stream socketpair, blocking, without close-on-exec (so that the
 * close-on-exec seen on a received copy is the channel's doing). */
static int stream_pair(int sp[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1) {
        fail_at(__FILE__, __LINE__, "socketpair: %s", strerror(errno));
        sp[0] = sp[1] = -1;
        return -1;
    }
    return 0;
}

/* True when every copy of the other end of 'fd' (a stream socketpair
 * end) is gone: the read side reports end of file. */
static int peer_gone(int fd)
{
    char c;
    ssize_t n;

    do {
        n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    } while (n == -1 && errno == EINTR);
    return n == 0;
}

static int wait_readable(int fd, int timeout_ms)
{
    struct pollfd p;
    int rc;

    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    do {
        rc = poll(&p, 1, timeout_ms);
    } while (rc == -1 && errno == EINTR);
    return rc == 1;
}

/* Writes all of 'n' bytes. */
static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;

    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w == -1 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads exactly 'n' bytes (waiting at most 10 s in all). */
static int read_exact(int fd, void *buf, size_t n)
{
    char *p = buf;

    while (n > 0) {
        ssize_t r;

        if (!wait_readable(fd, 10000)) {
            return -1;
        }
        r = read(fd, p, n);
        if (r == -1 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Sends bytes and descriptors with a bare sendmsg, as a hostile sender
 * would.  'separate': one SCM_RIGHTS cmsg per descriptor. */
static ssize_t raw_send(int chan, const void *data, size_t len,
                        const int *fds, int nfds, int separate)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int)) * 8];
    } ctl;
    struct iovec v;
    struct msghdr m;
    ssize_t n;
    int i;

    memset(&m, 0, sizeof(m));
    memset(&ctl, 0, sizeof(ctl));
    v.iov_base = (void *)data;
    v.iov_len = len;
    m.msg_iov = &v;
    m.msg_iovlen = 1;
    if (nfds > 0 && !separate) {
        struct cmsghdr *cm = (struct cmsghdr *)ctl.buf;

        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
        m.msg_control = ctl.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    }
    else if (nfds > 0) {
        for (i = 0; i < nfds; i++) {
            struct cmsghdr *cm =
                (struct cmsghdr *)(ctl.buf + i * CMSG_SPACE(sizeof(int)));

            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(cm), &fds[i], sizeof(int));
        }
        m.msg_control = ctl.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int)) * nfds;
    }
    do {
        n = sendmsg(chan, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n == -1 && errno == EINTR);
    return n;
}

static void put_hdr(void *buf, uint32_t magic, uint16_t version,
                    uint16_t hops, uint32_t len, uint32_t reserved)
{
    pc_chan_hdr_t h;

    memset(&h, 0, sizeof(h));
    h.magic = magic;
    h.version = version;
    h.hops = hops;
    h.len = len;
    h.reserved = reserved;
    memcpy(buf, &h, sizeof(h));
}

/* Sends a small good record carrying 'fd' and checks that it is the next
 * one received: the channel is still in step after whatever came before. */
static void check_good_record_passes(int sv[2], int fd)
{
    char buf[64];
    struct iovec iov;
    unsigned hops = 0;
    size_t len = 0;
    int got = -1;

    iov.iov_base = "still good";
    iov.iov_len = 10;
    CHECK_RV(pc_chan_send(sv[1], fd, 42, &iov, 1, 1000), 0);
    CHECK_RV(pc_chan_recv(sv[0], &got, &hops, buf, sizeof(buf), &len), 0);
    CHECK_INT(len, ==, 10);
    CHECK(memcmp(buf, "still good", 10) == 0);
    CHECK_INT(hops, ==, 42);
    CHECK(got >= 0 && same_file(got, fd));
    if (got >= 0) {
        close(got);
    }
    CHECK_RV(pc_chan_recv(sv[0], &got, &hops, buf, sizeof(buf), &len), EAGAIN);
}

static void close_pair(int sv[2])
{
    if (sv[0] >= 0) {
        close(sv[0]);
    }
    if (sv[1] >= 0) {
        close(sv[1]);
    }
    sv[0] = sv[1] = -1;
}

/* ------------------------------------------------------------------ */
/* 1. One record in one process                                        */

static void test_one_record(void)
{
    int sv[2], sp[2], fd = -1, lsn, cli, acc;
    struct iovec iov[2];
    char buf[256], rd[8];
    unsigned hops = 12345;
    size_t len = 999;
    struct sockaddr_in sa, sb;
    socklen_t sl;

    CHECK_RV(pc_chan_pair(sv, 0), 0);
    CHECK(is_cloexec(sv[0]) && is_cloexec(sv[1]));
    CHECK(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(sv[1], F_GETFL) & O_NONBLOCK);
    if (stream_pair(sp) != 0) {
        close_pair(sv);
        return;
    }
    CHECK(!is_cloexec(sp[0]));

    /* A payload in two pieces: they arrive as one. */
    iov[0].iov_base = "hello, ";
    iov[0].iov_len = 7;
    iov[1].iov_base = "perchild";
    iov[1].iov_len = 8;
    CHECK_RV(pc_chan_send(sv[1], sp[0], 7, iov, 2, 1000), 0);
    CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, buf, sizeof(buf), &len), 0);
    CHECK_INT(len, ==, 15);
    CHECK(memcmp(buf, "hello, perchild", 15) == 0);
    CHECK_INT(hops, ==, 7);
    CHECK(fd >= 0 && fd != sp[0] && fd != sp[1]);
    if (fd >= 0) {
        CHECK(same_file(fd, sp[0]));
        CHECK(!same_file(fd, sp[1]));
        CHECK(is_cloexec(fd));
        /* It is the very socket: what goes in there comes out at sp[1]. */
        CHECK(write_all(fd, "ping", 4) == 0);
        CHECK(read_exact(sp[1], rd, 4) == 0 && memcmp(rd, "ping", 4) == 0);
        close(fd);
    }
    CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, buf, sizeof(buf), &len), EAGAIN);
    CHECK_INT(fd, ==, -1);
    close(sp[0]);
    CHECK(peer_gone(sp[1]));     /* no copy left anywhere */
    close(sp[1]);

    /* A listening TCP socket on 127.0.0.1, with the largest hops. */
    lsn = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(lsn >= 0);
    if (lsn >= 0) {
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa.sin_port = 0;
        sl = sizeof(sa);
        CHECK(bind(lsn, (struct sockaddr *)&sa, sizeof(sa)) == 0);
        CHECK(listen(lsn, 4) == 0);
        CHECK(getsockname(lsn, (struct sockaddr *)&sa, &sl) == 0);
        iov[0].iov_base = "T";
        iov[0].iov_len = 1;
        CHECK_RV(pc_chan_send(sv[1], lsn, 0xffff, iov, 1, 1000), 0);
        fd = -1;
        CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, buf, sizeof(buf), &len), 0);
        CHECK_INT(len, ==, 1);
        CHECK(buf[0] == 'T');
        CHECK_INT(hops, ==, 0xffff);
        CHECK(fd >= 0 && same_file(fd, lsn) && is_cloexec(fd));
        if (fd >= 0) {
            sl = sizeof(sb);
            CHECK(getsockname(fd, (struct sockaddr *)&sb, &sl) == 0);
            CHECK(sb.sin_port == sa.sin_port);
            /* A connection made to the port is accepted on the copy. */
            cli = socket(AF_INET, SOCK_STREAM, 0);
            CHECK(cli >= 0);
            if (cli >= 0) {
                CHECK(connect(cli, (struct sockaddr *)&sa, sizeof(sa)) == 0);
                acc = accept(fd, NULL, NULL);
                CHECK(acc >= 0);
                if (acc >= 0) {
                    close(acc);
                }
                close(cli);
            }
            close(fd);
        }
        close(lsn);
    }
    close_pair(sv);
}

/* ------------------------------------------------------------------ */
/* 2. Many records, in order                                           */

#define MANY 1000
#define MANY_MAX (64 * 1024)

static size_t many_size(int i)
{
    if (i == 0) {
        return 1;
    }
    if (i == 1 || i == MANY - 1) {
        return MANY_MAX;
    }
    return 1 + (size_t)(((uint32_t)i * 2654435761u) >> 7) % MANY_MAX;
}

static unsigned many_hops(int i)
{
    return ((unsigned)i * 37u) & 0xffff;
}

/* Receives every queued record, checking each against the expected
 * sequence; returns the receive status that ended it. */
static int drain_many(int sv[2], int sp0, int *next, unsigned char *buf)
{
    for (;;) {
        unsigned hops = 0;
        size_t len = 0;
        int fd = -1, rv;

        rv = pc_chan_recv(sv[0], &fd, &hops, (char *)buf, MANY_MAX, &len);
        if (rv != 0) {
            CHECK_INT(fd, ==, -1);
            return rv;
        }
        if (*next >= MANY) {
            fail_at(__FILE__, __LINE__, "a record beyond the last one");
        }
        else {
            if (len != many_size(*next) || hops != many_hops(*next)
                || !pattern_ok(buf, len, (unsigned)*next)) {
                fail_at(__FILE__, __LINE__,
                        "record %d: len %zu (want %zu), hops %u (want %u), "
                        "payload %s", *next, len, many_size(*next), hops,
                        many_hops(*next),
                        pattern_ok(buf, len, (unsigned)*next) ? "ok"
                                                              : "wrong");
            }
        }
        if (!(fd >= 0 && same_file(fd, sp0) && is_cloexec(fd))) {
            fail_at(__FILE__, __LINE__, "record %d: bad descriptor %d",
                    *next, fd);
        }
        if (fd >= 0) {
            close(fd);
        }
        (*next)++;
    }
}

static void test_many_records(void)
{
    int sv[2], sp[2], i, next = 0, queued_max = 0, rv, fd = -1;
    unsigned char *out = malloc(MANY_MAX), *in = malloc(MANY_MAX);
    unsigned hops;
    size_t len;

    if (out == NULL || in == NULL) {
        fail_at(__FILE__, __LINE__, "malloc");
        free(out);
        free(in);
        return;
    }
    CHECK_RV(pc_chan_pair(sv, 0), 0);
    if (stream_pair(sp) != 0) {
        close_pair(sv);
        free(out);
        free(in);
        return;
    }
    /* Empty channel: EAGAIN at once, nothing handed out. */
    CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, (char *)in, MANY_MAX, &len),
             EAGAIN);
    CHECK_INT(fd, ==, -1);

    /* Send until the channel is full, then drain it: records of many
     * sizes queue up together and must come out whole and in order. */
    for (i = 0; i < MANY && t_fail == 0;) {
        struct iovec iov;

        iov.iov_base = out;
        iov.iov_len = many_size(i);
        fill_pattern(out, iov.iov_len, (unsigned)i);
        rv = pc_chan_send(sv[1], sp[0], many_hops(i), &iov, 1, 0);
        if (rv == 0) {
            i++;
            if (i - next > queued_max) {
                queued_max = i - next;
            }
            continue;
        }
        CHECK_RV(rv, ETIMEDOUT);
        CHECK(i > next);        /* full means something is queued */
        if (rv != ETIMEDOUT || i == next) {
            break;
        }
        CHECK_RV(drain_many(sv, sp[0], &next, in), EAGAIN);
        CHECK_INT(next, ==, i);
    }
    CHECK_RV(drain_many(sv, sp[0], &next, in), EAGAIN);
    CHECK_INT(next, ==, MANY);
    CHECK_INT(queued_max, >, 1);
    CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, (char *)in, MANY_MAX, &len),
             EAGAIN);
    close(sp[0]);
    CHECK(peer_gone(sp[1]));
    close(sp[1]);
    close_pair(sv);
    free(out);
    free(in);
}

/* ------------------------------------------------------------------ */
/* 3. Across fork, both ways                                           */

#define FORK_N 100

typedef struct rec_info {
    uint32_t i;
    uint32_t filler;
    uint64_t dev;
    uint64_t ino;
} rec_info;

static size_t filler_size(int i)
{
    return ((size_t)i * 397) % 3000;
}

/* Sends FORK_N records, each with a fresh socket; keep[i] gets the end
 * that stays here. */
static void send_side(int chan, int keep[FORK_N])
{
    static unsigned char filler[3000];
    int i, sp[2];

    for (i = 0; i < FORK_N; i++) {
        struct iovec iov[2];
        struct stat st;
        rec_info info;

        keep[i] = -1;
        if (stream_pair(sp) != 0) {
            return;
        }
        CHECK(fstat(sp[0], &st) == 0);
        memset(&info, 0, sizeof(info));
        info.i = (uint32_t)i;
        info.filler = (uint32_t)filler_size(i);
        info.dev = (uint64_t)st.st_dev;
        info.ino = (uint64_t)st.st_ino;
        fill_pattern(filler, info.filler, 1000u + (unsigned)i);
        iov[0].iov_base = &info;
        iov[0].iov_len = sizeof(info);
        iov[1].iov_base = filler;
        iov[1].iov_len = info.filler;
        CHECK_RV(pc_chan_send(chan, sp[0], (unsigned)i, iov, 2, 10000), 0);
        close(sp[0]);
        keep[i] = sp[1];
    }
}

/* Receives FORK_N records, checks them, and answers through each
 * received socket before closing it. */
static void receive_side(int chan)
{
    static unsigned char buf[sizeof(rec_info) + 3000];
    int i;

    for (i = 0; i < FORK_N; i++) {
        rec_info info;
        struct stat st;
        unsigned hops = 0;
        size_t len = 0;
        int fd = -1, rv;
        char reply[32];

        if (!wait_readable(chan, 10000)) {
            fail_at(__FILE__, __LINE__, "record %d never came", i);
            return;
        }
        rv = pc_chan_recv(chan, &fd, &hops, (char *)buf, sizeof(buf), &len);
        CHECK_RV(rv, 0);
        if (rv != 0) {
            return;
        }
        CHECK_INT(hops, ==, i);
        CHECK_INT(len, ==, sizeof(info) + filler_size(i));
        if (len >= sizeof(info)) {
            memcpy(&info, buf, sizeof(info));
            CHECK_INT(info.i, ==, i);
            CHECK(pattern_ok(buf + sizeof(info), len - sizeof(info),
                             1000u + (unsigned)i));
            CHECK(fstat(fd, &st) == 0);
            CHECK((uint64_t)st.st_dev == info.dev
                  && (uint64_t)st.st_ino == info.ino);
        }
        CHECK(is_cloexec(fd));
        snprintf(reply, sizeof(reply), "reply %04d", i);
        CHECK(write_all(fd, reply, 10) == 0);
        close(fd);
    }
}

/* Reads each answer at the kept end; then end of file: the receiver
 * closed its copy. */
static void check_replies(int keep[FORK_N])
{
    int i;

    for (i = 0; i < FORK_N; i++) {
        char want[32], got[16];

        if (keep[i] < 0) {
            continue;
        }
        snprintf(want, sizeof(want), "reply %04d", i);
        if (read_exact(keep[i], got, 10) != 0 || memcmp(got, want, 10)) {
            fail_at(__FILE__, __LINE__, "no reply %d through the passed "
                    "socket", i);
        }
        CHECK(wait_readable(keep[i], 10000) && peer_gone(keep[i]));
        close(keep[i]);
    }
}

static void test_across_fork(void)
{
    static int keep[FORK_N];
    int ch[2], fd = -1;
    unsigned hops;
    size_t len;
    char buf[16];
    pid_t pid;

    /* Child sends, parent receives. */
    t_ctx = "child to parent";
    CHECK_RV(pc_chan_pair(ch, 0), 0);
    pid = fork_child();
    if (pid == 0) {
        close(ch[0]);
        child_mark();
        send_side(ch[1], keep);
        check_replies(keep);
        child_exit();
    }
    close(ch[1]);
    ch[1] = -1;
    if (pid > 0) {
        receive_side(ch[0]);
        check_child(pid, "sender");
        /* The only sender is gone: end of file. */
        CHECK_RV(pc_chan_recv(ch[0], &fd, &hops, buf, sizeof(buf), &len),
                 EPIPE);
        CHECK_INT(fd, ==, -1);
    }
    close_pair(ch);

    /* Parent sends, child receives. */
    t_ctx = "parent to child";
    CHECK_RV(pc_chan_pair(ch, 0), 0);
    pid = fork_child();
    if (pid == 0) {
        close(ch[1]);
        child_mark();
        receive_side(ch[0]);
        child_exit();
    }
    close(ch[0]);
    ch[0] = -1;
    if (pid > 0) {
        send_side(ch[1], keep);
        check_replies(keep);
        check_child(pid, "receiver");
    }
    close_pair(ch);
    t_ctx = "";
}

/* ------------------------------------------------------------------ */
/* 4. Bad records: EPROTO, nothing leaked                              */

#define AUTO_LEN 0xfffffffeu    /* len field = the payload bytes sent */

typedef struct bad_case {
    const char *what;
    uint32_t magic;
    uint16_t version;
    uint32_t len_field;
    uint32_t reserved;
    size_t hdr_bytes;           /* < sizeof(pc_chan_hdr_t): truncated */
    size_t payload;
    int nfds;
    int separate;               /* one cmsg per descriptor */
    size_t rbuf;                /* the receiver's buffer */
} bad_case;

#define H sizeof(pc_chan_hdr_t)
#define M PC_CHAN_MAGIC
#define V PC_CHAN_VERSION

static const bad_case bad_cases[] = {
    { "truncated header: 1 byte", M, V, 0, 0, 1, 0, 1, 0, 4096 },
    { "truncated header: 10 bytes", M, V, 0, 0, 10, 0, 1, 0, 4096 },
    { "truncated header: 15 bytes", M, V, 0, 0, H - 1, 0, 1, 0, 4096 },
    { "no descriptor", M, V, AUTO_LEN, 0, H, 5, 0, 0, 4096 },
    { "no descriptor, no payload", M, V, AUTO_LEN, 0, H, 0, 0, 0, 4096 },
    { "two descriptors in one SCM_RIGHTS", M, V, AUTO_LEN, 0, H, 5, 2, 0,
      4096 },
    { "two cmsgs with one descriptor each", M, V, AUTO_LEN, 0, H, 5, 2, 1,
      4096 },
    { "five descriptors (more than the receiver has room for)", M, V,
      AUTO_LEN, 0, H, 5, 5, 0, 4096 },
    { "payload bigger than the receiver's buffer", M, V, AUTO_LEN, 0, H,
      100, 1, 0, 50 },
    { "payload one byte bigger than the receiver's buffer", M, V, AUTO_LEN,
      0, H, 4097, 1, 0, 4096 },
    { "payload with a zero-byte receiver buffer", M, V, AUTO_LEN, 0, H, 1,
      1, 0, 0 },
    /* Only MSG_TRUNC tells this one: the bytes that fit agree with the
     * len field. */
    { "len field = the receiver's buffer, more bytes sent", M, V, 50, 0, H,
      100, 1, 0, 50 },
    { "wrong magic", M ^ 1u, V, AUTO_LEN, 0, H, 5, 1, 0, 4096 },
    { "byte-swapped magic", 0x31484350u, V, AUTO_LEN, 0, H, 5, 1, 0, 4096 },
    { "version 0", M, 0, AUTO_LEN, 0, H, 5, 1, 0, 4096 },
    { "version 2", M, V + 1, AUTO_LEN, 0, H, 5, 1, 0, 4096 },
    { "len field larger than the bytes", M, V, 10, 0, H, 5, 1, 0, 4096 },
    { "len field smaller than the bytes", M, V, 5, 0, H, 10, 1, 0, 4096 },
    { "len field 0 with 3 bytes", M, V, 0, 0, H, 3, 1, 0, 4096 },
    { "len field 0xffffffff, no payload", M, V, 0xffffffffu, 0, H, 0, 1, 0,
      4096 },
    { "reserved field 1", M, V, AUTO_LEN, 1, H, 5, 1, 0, 4096 },
    { "reserved field 0x80000000", M, V, AUTO_LEN, 0x80000000u, H, 5, 1, 0,
      4096 },
    { "len above PC_CHAN_MAX_PAYLOAD, bytes to match", M, V, AUTO_LEN, 0, H,
      PC_CHAN_MAX_PAYLOAD + 1, 1, 0, PC_CHAN_MAX_PAYLOAD + 4096 },
};

#undef H
#undef M
#undef V

static void run_bad_case(int sv[2], const bad_case *c, unsigned char *msg,
                         char *rbuf, int spare_fd)
{
    int ends[8][2], i, fd = 12345, rv;
    int sent[8];
    size_t total = c->hdr_bytes + c->payload;
    unsigned hops = 777;
    size_t len = 777;
    fd_snap before, after;
    ssize_t n;

    t_ctx = c->what;
    count_fds(&before);
    for (i = 0; i < c->nfds; i++) {
        if (stream_pair(ends[i]) != 0) {
            return;
        }
        sent[i] = ends[i][0];
    }
    put_hdr(msg, c->magic, c->version, 3,
            c->len_field == AUTO_LEN ? (uint32_t)c->payload : c->len_field,
            c->reserved);
    fill_pattern(msg + c->hdr_bytes, c->payload, 7);
    n = raw_send(sv[1], msg, total, sent, c->nfds, c->separate);
    if (n != (ssize_t)total) {
        fail_at(__FILE__, __LINE__, "raw sendmsg: %zd (%s)", n,
                n < 0 ? strerror(errno) : "short");
    }
    for (i = 0; i < c->nfds; i++) {
        close(ends[i][0]);
    }
    rv = pc_chan_recv(sv[0], &fd, &hops, rbuf, c->rbuf, &len);
    CHECK_RV(rv, EPROTO);
    CHECK_INT(fd, ==, -1);
    if (rv == 0 && fd >= 0) {
        close(fd);
    }
    for (i = 0; i < c->nfds; i++) {
        if (!peer_gone(ends[i][1])) {
            fail_at(__FILE__, __LINE__, "descriptor %d of %d still open "
                    "somewhere", i + 1, c->nfds);
        }
        close(ends[i][1]);
    }
    count_fds(&after);
    if (after.n != before.n) {
        fail_at(__FILE__, __LINE__, "descriptors: %d before, %d after",
                before.n, after.n);
        report_fd_diff(&before, &after);
    }
    /* Nothing of the bad record is left to be read as the next one. */
    check_good_record_passes(sv, spare_fd);
    t_ctx = "";
}

static void test_bad_records(void)
{
    int sv[2], sp[2];
    size_t i, big = PC_CHAN_MAX_PAYLOAD + 4096 + sizeof(pc_chan_hdr_t);
    unsigned char *msg = malloc(big);
    char *rbuf = malloc(big);

    if (msg == NULL || rbuf == NULL || stream_pair(sp) != 0) {
        free(msg);
        free(rbuf);
        return;
    }
    /* Room for the largest record, as pc_handoff.c asks for. */
    CHECK_RV(pc_chan_pair(sv, 4 * PC_CHAN_MAX_PAYLOAD), 0);
    for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        run_bad_case(sv, &bad_cases[i], msg, rbuf, sp[0]);
    }
    close_pair(sv);
    close_pair(sp);
    free(msg);
    free(rbuf);
}

/* ------------------------------------------------------------------ */
/* 5. An empty payload is a record; EOF is EPIPE                       */

static void test_empty_payload_and_eof(void)
{
    int sv[2], sp[2], fd = -1;
    unsigned hops = 0;
    size_t len = 99;
    char buf[64];
    struct iovec iov;

    CHECK_RV(pc_chan_pair(sv, 0), 0);
    if (stream_pair(sp) != 0) {
        close_pair(sv);
        return;
    }
    CHECK_RV(pc_chan_send(sv[1], sp[0], 3, NULL, 0, 1000), 0);
    CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, buf, sizeof(buf), &len), 0);
    CHECK_INT(len, ==, 0);
    CHECK_INT(hops, ==, 3);
    CHECK(fd >= 0 && same_file(fd, sp[0]) && is_cloexec(fd));
    if (fd >= 0) {
        close(fd);
    }
    /* The same with one empty iovec, and with no buffer at all. */
    iov.iov_base = buf;
    iov.iov_len = 0;
    CHECK_RV(pc_chan_send(sv[1], sp[0], 4, &iov, 1, 1000), 0);
    len = 99;
    fd = -1;
    CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, NULL, 0, &len), 0);
    CHECK_INT(len, ==, 0);
    CHECK_INT(hops, ==, 4);
    CHECK(fd >= 0 && same_file(fd, sp[0]));
    if (fd >= 0) {
        close(fd);
    }
    CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, buf, sizeof(buf), &len), EAGAIN);

    /* A record queued before the sender closed is still delivered, then
     * EPIPE, again and again. */
    CHECK_RV(pc_chan_send(sv[1], sp[0], 5, NULL, 0, 1000), 0);
    close(sv[1]);
    sv[1] = -1;
    fd = -1;
    CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, buf, sizeof(buf), &len), 0);
    CHECK_INT(len, ==, 0);
    CHECK_INT(hops, ==, 5);
    CHECK(fd >= 0 && same_file(fd, sp[0]));
    if (fd >= 0) {
        close(fd);
    }
    fd = 12345;
    CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, buf, sizeof(buf), &len), EPIPE);
    CHECK_INT(fd, ==, -1);
    CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, buf, sizeof(buf), &len), EPIPE);
    close_pair(sv);
    close(sp[0]);
    CHECK(peer_gone(sp[1]));
    close(sp[1]);
}

/* ------------------------------------------------------------------ */
/* 6. MSG_CTRUNC: the receiver is out of descriptors                   */

/* Child side of test 6: waits for the parent to set the limit. */
static void ctrunc_wait(int up, int down, int what)
{
    char c;

    CHECK(write(up, &what, sizeof(what)) == sizeof(what));
    CHECK(read(down, &c, 1) == 1);
}

/* The limit is set by the parent with prlimit(2) on the child's pid:
 * valgrind emulates the calls a process makes on itself, so a child
 * lowering its own limit would not reach the kernel under valgrind.
 *
 * Queued: A (one descriptor), C (two descriptors, raw), B (one).
 *  - A with no descriptor number left: the kernel drops the descriptor
 *    and sets MSG_CTRUNC; pc_chan_recv says EMFILE (the record was
 *    well-formed, the receiver is out of descriptors);
 *  - C with one number left: one of its two descriptors is installed,
 *    the other dropped, MSG_CTRUNC set: what arrives looks like a
 *    record with one descriptor, and only MSG_CTRUNC tells;
 *  - B with the limit back: received. */
static void test_ctrunc_out_of_fds(void)
{
    int sv[2], q[2], r[2], c1[2], c2[2], up[2], down[2];
    unsigned char rec[sizeof(pc_chan_hdr_t) + 1];
    struct iovec iov;
    int cfds[2];
    pid_t pid;

    CHECK_RV(pc_chan_pair(sv, 0), 0);
    if (stream_pair(q) != 0 || stream_pair(r) != 0 || stream_pair(c1) != 0
        || stream_pair(c2) != 0 || pipe(up) != 0 || pipe(down) != 0) {
        fail_at(__FILE__, __LINE__, "setup failed");
        return;     /* leaks are reported; this does not happen */
    }
    iov.iov_base = "A";
    iov.iov_len = 1;
    CHECK_RV(pc_chan_send(sv[1], q[0], 1, &iov, 1, 1000), 0);
    put_hdr(rec, PC_CHAN_MAGIC, PC_CHAN_VERSION, 3, 1, 0);
    rec[sizeof(pc_chan_hdr_t)] = 'C';
    cfds[0] = c1[0];
    cfds[1] = c2[0];
    CHECK_INT(raw_send(sv[1], rec, sizeof(rec), cfds, 2, 0), ==, sizeof(rec));
    iov.iov_base = "B";
    CHECK_RV(pc_chan_send(sv[1], r[0], 2, &iov, 1, 1000), 0);
    close(q[0]);
    close(r[0]);
    close(c1[0]);
    close(c2[0]);

    pid = fork_child();
    if (pid == 0) {
        int before, lowest, fd = -1, d, rv;
        unsigned hops = 0;
        size_t len = 0;
        char buf[16];

        close(up[0]);
        close(down[1]);
        close(sv[1]);
        before = count_fds(NULL);
        lowest = lowest_free_fd();
        /* Limit = the next descriptor number: no new descriptor. */
        ctrunc_wait(up[1], down[0], lowest);
        t_ctx = "no descriptor left";
        d = dup(sv[0]);
        if (d != -1 || errno != EMFILE) {
            fail_at(__FILE__, __LINE__, "the limit did not take: dup %d", d);
        }
        if (d >= 0) {
            close(d);
        }
        rv = pc_chan_recv(sv[0], &fd, &hops, buf, sizeof(buf), &len);
        CHECK_RV(rv, EMFILE);
        CHECK_INT(fd, ==, -1);
        if (rv == 0 && fd >= 0) {
            close(fd);
        }
        CHECK(peer_gone(q[1]));     /* the dropped descriptor is gone */

        /* Limit = one more: one of C's two descriptors gets in. */
        ctrunc_wait(up[1], down[0], lowest + 1);
        t_ctx = "one descriptor left, two sent";
        fd = -1;
        rv = pc_chan_recv(sv[0], &fd, &hops, buf, sizeof(buf), &len);
        CHECK_RV(rv, EPROTO);
        CHECK_INT(fd, ==, -1);
        if (rv == 0 && fd >= 0) {
            close(fd);
        }
        CHECK(peer_gone(c1[1]));
        CHECK(peer_gone(c2[1]));

        /* The limit is back. */
        ctrunc_wait(up[1], down[0], -1);
        t_ctx = "limit restored";
        CHECK_INT(count_fds(NULL), ==, before);
        fd = -1;
        CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, buf, sizeof(buf), &len), 0);
        CHECK_INT(len, ==, 1);
        CHECK(buf[0] == 'B');
        CHECK_INT(hops, ==, 2);
        CHECK(fd >= 0 && !same_file(fd, r[1]));
        if (fd >= 0) {
            char rd[2];

            CHECK(write_all(fd, "ok", 2) == 0);
            CHECK(read_exact(r[1], rd, 2) == 0 && memcmp(rd, "ok", 2) == 0);
            close(fd);
        }
        CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, buf, sizeof(buf), &len),
                 EAGAIN);
        CHECK_INT(count_fds(NULL), ==, before);
        child_exit();
    }
    close(up[1]);
    close(down[0]);
    if (pid > 0) {
        struct rlimit old, low;
        int step, limit;

        if (prlimit(pid, RLIMIT_NOFILE, NULL, &old) != 0) {
            fail_at(__FILE__, __LINE__, "prlimit get: %s", strerror(errno));
        }
        for (step = 0; step < 3; step++) {
            if (read(up[0], &limit, sizeof(limit)) != sizeof(limit)) {
                fail_at(__FILE__, __LINE__, "child stopped at step %d",
                        step);
                break;
            }
            low = old;
            if (limit >= 0) {
                low.rlim_cur = (rlim_t)limit;
            }
            CHECK(prlimit(pid, RLIMIT_NOFILE, &low, NULL) == 0);
            CHECK(write(down[1], "g", 1) == 1);
        }
        close(down[1]);
        check_child(pid, "receiver out of descriptors");
    }
    else {
        close(down[1]);
    }
    close(up[0]);
    close_pair(sv);
    close_pair(q);
    close_pair(r);
    close_pair(c1);
    close_pair(c2);
}

/* ------------------------------------------------------------------ */
/* 7. A full channel: ETIMEDOUT; a closed one: EPIPE                   */

static int fill_channel(int chan, int fd, const struct iovec *iov)
{
    int n = 0, rv;

    while ((rv = pc_chan_send(chan, fd, 0, iov, 1, 0)) == 0 && n < 100000) {
        n++;
    }
    CHECK_RV(rv, ETIMEDOUT);
    return n;
}

static int drain_all(int chan)
{
    static char buf[4096];
    unsigned hops;
    size_t len;
    int fd, rv, n = 0;

    while ((rv = pc_chan_recv(chan, &fd, &hops, buf, sizeof(buf), &len))
           == 0) {
        close(fd);
        n++;
    }
    CHECK_RV(rv, EAGAIN);
    return n;
}

static void test_send_timeout_and_epipe(void)
{
    static char payload[1000];
    int sv[2], sp[2], n;
    struct iovec iov;
    long long t0, dt;
    pid_t pid;

    iov.iov_base = payload;
    iov.iov_len = sizeof(payload);
    CHECK_RV(pc_chan_pair(sv, 0), 0);
    if (stream_pair(sp) != 0) {
        close_pair(sv);
        return;
    }
    n = fill_channel(sv[1], sp[0], &iov);
    CHECK_INT(n, >, 0);

    t0 = now_ms();
    CHECK_RV(pc_chan_send(sv[1], sp[0], 0, &iov, 1, 50), ETIMEDOUT);
    dt = now_ms() - t0;
    CHECK_INT(dt, <, 2000);     /* a hang guard */
    CHECK_INT(dt, >=, 20);      /* it did wait for room */
    CHECK(fd_is_open(sp[0]));   /* the caller keeps its descriptor */

    /* One record taken: room for one more. */
    {
        char buf[sizeof(payload)];
        unsigned hops;
        size_t len;
        int fd = -1;

        CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, buf, sizeof(buf), &len), 0);
        if (fd >= 0) {
            close(fd);
        }
        CHECK_RV(pc_chan_send(sv[1], sp[0], 0, &iov, 1, 1000), 0);
    }

    /* A sender waiting for room is let through when the receiver reads. */
    pid = fork_child();
    if (pid == 0) {
        close(sv[1]);
        child_mark();
        usleep(100 * 1000);
        drain_all(sv[0]);
        child_exit();
    }
    if (pid > 0) {
        t0 = now_ms();
        CHECK_RV(pc_chan_send(sv[1], sp[0], 0, &iov, 1, 10000), 0);
        dt = now_ms() - t0;
        CHECK_INT(dt, <, 5000);
        check_child(pid, "drainer");
    }
    /* Whatever the drainer left (it may have taken the last one too). */
    drain_all(sv[0]);

    /* No receiver left: EPIPE, and no SIGPIPE (that would kill us). */
    close(sv[0]);
    sv[0] = -1;
    CHECK_RV(pc_chan_send(sv[1], sp[0], 0, &iov, 1, 50), EPIPE);
    CHECK_RV(pc_chan_send(sv[1], sp[0], 0, NULL, 0, 0), EPIPE);
    CHECK(fd_is_open(sp[0]));
    close_pair(sv);
    close(sp[0]);
    CHECK(peer_gone(sp[1]));
    close(sp[1]);
}

/* ------------------------------------------------------------------ */
/* 11. EPIPE also when the receiver went away with records queued      */

/* The receiving end closed while records were still queued in it: the
 * next send must say EPIPE like any other send to a closed channel. */
static void test_send_epipe_after_queued_close(void)
{
    static char payload[100];
    int sv[2], sp[2], i;
    struct iovec iov;

    iov.iov_base = payload;
    iov.iov_len = sizeof(payload);
    CHECK_RV(pc_chan_pair(sv, 0), 0);
    if (stream_pair(sp) != 0) {
        close_pair(sv);
        return;
    }
    for (i = 0; i < 3; i++) {
        CHECK_RV(pc_chan_send(sv[1], sp[0], 0, &iov, 1, 1000), 0);
    }
    close(sv[0]);
    sv[0] = -1;
    CHECK_RV(pc_chan_send(sv[1], sp[0], 0, &iov, 1, 50), EPIPE);
    CHECK_RV(pc_chan_send(sv[1], sp[0], 0, &iov, 1, 50), EPIPE);
    close_pair(sv);
    close(sp[0]);
    CHECK(peer_gone(sp[1]));    /* the queued copies were released */
    close(sp[1]);
}

/* ------------------------------------------------------------------ */
/* 8. Argument limits                                                  */

static void test_send_limits(void)
{
    int sv[2], sp[2], fd = -1, i;
    size_t n = PC_CHAN_MAX_PAYLOAD, len = 0;
    unsigned char *big = malloc(n + 1), *in = malloc(n + 1);
    struct iovec iov[9];
    unsigned hops = 0;

    if (big == NULL || in == NULL || stream_pair(sp) != 0) {
        free(big);
        free(in);
        return;
    }
    CHECK_RV(pc_chan_pair(sv, 4 * PC_CHAN_MAX_PAYLOAD), 0);
    fill_pattern(big, n + 1, 99);

    /* Exactly the largest payload, in 8 pieces: accepted whole. */
    for (i = 0; i < 8; i++) {
        iov[i].iov_base = big + i * (n / 8);
        iov[i].iov_len = n / 8;
    }
    CHECK_RV(pc_chan_send(sv[1], sp[0], 1, iov, 8, 1000), 0);
    CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, (char *)in, n, &len), 0);
    CHECK_INT(len, ==, n);
    CHECK(memcmp(in, big, n) == 0);
    CHECK(fd >= 0 && same_file(fd, sp[0]));
    if (fd >= 0) {
        close(fd);
    }

    /* One byte more: EMSGSIZE, in one piece or two. */
    iov[0].iov_base = big;
    iov[0].iov_len = n + 1;
    CHECK_RV(pc_chan_send(sv[1], sp[0], 1, iov, 1, 1000), EMSGSIZE);
    iov[0].iov_len = n;
    iov[1].iov_base = big + n;
    iov[1].iov_len = 1;
    CHECK_RV(pc_chan_send(sv[1], sp[0], 1, iov, 2, 1000), EMSGSIZE);

    /* More than 8 pieces, a negative count, no descriptor: EINVAL. */
    for (i = 0; i < 9; i++) {
        iov[i].iov_base = big + i;
        iov[i].iov_len = 1;
    }
    CHECK_RV(pc_chan_send(sv[1], sp[0], 1, iov, 9, 1000), EINVAL);
    CHECK_RV(pc_chan_send(sv[1], sp[0], 1, iov, -1, 1000), EINVAL);
    CHECK_RV(pc_chan_send(sv[1], -1, 1, iov, 1, 1000), EINVAL);
    /* hops must fit the header's 16 bits. */
    CHECK_RV(pc_chan_send(sv[1], sp[0], 0x10000, iov, 1, 1000), EMSGSIZE);
    /* A descriptor number that is not open: the kernel's EBADF. */
    CHECK_RV(pc_chan_send(sv[1], lowest_free_fd(), 1, iov, 1, 1000), EBADF);
    /* None of those left anything in the channel. */
    CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, (char *)in, n, &len), EAGAIN);

    /* 8 pieces of one byte each still work. */
    CHECK_RV(pc_chan_send(sv[1], sp[0], 9, iov, 8, 1000), 0);
    fd = -1;
    CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, (char *)in, n, &len), 0);
    CHECK_INT(len, ==, 8);
    CHECK(memcmp(in, big, 8) == 0);
    CHECK_INT(hops, ==, 9);
    if (fd >= 0) {
        close(fd);
    }
    close_pair(sv);
    close_pair(sp);
    free(big);
    free(in);
}

/* ------------------------------------------------------------------ */
/* 9. A zero-byte record is a bad record, not end of file              */

/* SOCK_SEQPACKET delivers zero-byte messages: recvmsg returns 0 for one
 * while the sender is alive.  A hostile sender must not be able to make
 * the receiver believe the channel is closed. */
static void test_zero_byte_record(void)
{
    int sv[2], sp[2], fd = 12345;
    unsigned hops;
    size_t len;
    char buf[64];
    ssize_t n;

    CHECK_RV(pc_chan_pair(sv, 0), 0);
    if (stream_pair(sp) != 0) {
        close_pair(sv);
        return;
    }
    t_ctx = "zero bytes, one descriptor";
    n = raw_send(sv[1], "", 0, &sp[0], 1, 0);
    CHECK_INT(n, ==, 0);
    CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, buf, sizeof(buf), &len), EPROTO);
    CHECK_INT(fd, ==, -1);
    check_good_record_passes(sv, sp[0]);

    t_ctx = "zero bytes, no descriptor";
    n = raw_send(sv[1], "", 0, NULL, 0, 0);
    CHECK_INT(n, ==, 0);
    CHECK_RV(pc_chan_recv(sv[0], &fd, &hops, buf, sizeof(buf), &len), EPROTO);
    CHECK_INT(fd, ==, -1);
    check_good_record_passes(sv, sp[0]);

    t_ctx = "";
    close_pair(sv);
    close(sp[0]);
    CHECK(peer_gone(sp[1]));
    close(sp[1]);
}

/* ------------------------------------------------------------------ */
/* 10. Concurrent senders: records stay whole and in per-sender order  */

#define SENDERS 4
#define PER_SENDER 150

typedef struct conc_hdr {
    uint32_t sender;
    uint32_t seq;
    uint64_t ino;
} conc_hdr;

static size_t conc_size(int k, int j)
{
    return 1 + ((size_t)(k * 7919 + j * 1237) % (64 * 1024));
}

/* Receives from 'chan' until EPIPE (every sender gone) and returns the
 * number of records; each is checked by 'check' (may be NULL). */
static int receive_until_eof(int chan, void (*check)(const unsigned char *,
                                                     size_t, unsigned, int),
                             unsigned char *buf, size_t bufsize)
{
    int total = 0;

    for (;;) {
        unsigned hops = 0;
        size_t len = 0;
        int fd = -1, rv;

        rv = pc_chan_recv(chan, &fd, &hops, (char *)buf, bufsize, &len);
        if (rv == EAGAIN) {
            if (!wait_readable(chan, 20000)) {
                fail_at(__FILE__, __LINE__, "records stopped after %d",
                        total);
                return total;
            }
            continue;
        }
        if (rv == EPIPE) {
            CHECK_INT(fd, ==, -1);
            return total;
        }
        CHECK_RV(rv, 0);
        if (rv == 0) {
            total++;
            if (check) {
                check(buf, len, hops, fd);
            }
            close(fd);
        }
    }
}

static int conc_next[SENDERS];

static void check_conc_record(const unsigned char *buf, size_t len,
                              unsigned hops, int fd)
{
    conc_hdr h;
    struct stat st;
    int k;

    CHECK_INT(len, >=, sizeof(h));
    if (len < sizeof(h)) {
        return;
    }
    memcpy(&h, buf, sizeof(h));
    if (h.sender >= SENDERS) {
        fail_at(__FILE__, __LINE__, "bad sender %u", h.sender);
        return;
    }
    k = (int)h.sender;
    CHECK_INT(h.seq, ==, conc_next[k]);
    CHECK_INT(hops, ==, k);
    CHECK_INT(len, ==, sizeof(h) + conc_size(k, (int)h.seq));
    CHECK(pattern_ok(buf + sizeof(h), len - sizeof(h),
                     (unsigned)(k * 100000 + (int)h.seq)));
    CHECK(fstat(fd, &st) == 0 && (uint64_t)st.st_ino == h.ino);
    conc_next[k] = (int)h.seq + 1;
}

/* Several processes send on copies of one sending end at once, as the
 * children of a pool do: every record arrives whole, with its own
 * descriptor, in each sender's order. */
static void test_concurrent_senders(void)
{
    static unsigned char buf[sizeof(conc_hdr) + 64 * 1024];
    int ch[2], k, total;
    pid_t pids[SENDERS];

    CHECK_RV(pc_chan_pair(ch, 4 * PC_CHAN_MAX_PAYLOAD), 0);
    for (k = 0; k < SENDERS; k++) {
        conc_next[k] = 0;
        pids[k] = fork_child();
        if (pids[k] == 0) {
            int sp[2], j, rv = 0, tries;
            struct stat st;

            close(ch[0]);
            child_mark();
            if (stream_pair(sp) != 0) {
                child_exit();
            }
            CHECK(fstat(sp[0], &st) == 0);
            for (j = 0; j < PER_SENDER; j++) {
                conc_hdr h;
                struct iovec iov[2];

                h.sender = (uint32_t)k;
                h.seq = (uint32_t)j;
                h.ino = (uint64_t)st.st_ino;
                memcpy(buf, &h, sizeof(h));
                fill_pattern(buf + sizeof(h), conc_size(k, j),
                             (unsigned)(k * 100000 + j));
                iov[0].iov_base = buf;
                iov[0].iov_len = sizeof(h);
                iov[1].iov_base = buf + sizeof(h);
                iov[1].iov_len = conc_size(k, j);
                /* A send that gives up sends nothing: try again (how
                 * soon it gives up is test 12's business). */
                for (tries = 0; tries < 10; tries++) {
                    rv = pc_chan_send(ch[1], sp[0], (unsigned)k, iov, 2,
                                      10000);
                    if (rv != ETIMEDOUT) {
                        break;
                    }
                }
                CHECK_RV(rv, 0);
            }
            close_pair(sp);
            child_exit();
        }
    }
    close(ch[1]);
    ch[1] = -1;
    total = receive_until_eof(ch[0], check_conc_record, buf, sizeof(buf));
    CHECK_INT(total, ==, SENDERS * PER_SENDER);
    for (k = 0; k < SENDERS; k++) {
        CHECK_INT(conc_next[k], ==, PER_SENDER);
        if (pids[k] > 0) {
            check_child(pids[k], "concurrent sender");
        }
    }
    close_pair(ch);
}

/* ------------------------------------------------------------------ */
/* 12. A sender that loses the room it was woken for waits on          */

/* The seam: this file defines poll() and sendmsg(), so pc_channel.c's
 * calls land here (a definition in the executable wins over libc's) and
 * go on to the kernel by syscall(2).  Unarmed they only pass through.
 * Armed, they play the receiver and a competing sender at the exact
 * moments between pc_chan_send's wait and its retry, which real
 * processes hit only by chance:
 *   1: the sender waits for room -> the receiver empties the channel;
 *   2: the sender retries         -> another sender fills it first;
 *   3: the sender waits again     -> the receiver reads 50 ms later;
 *   4: done. */
static struct {
    int armed;
    int chan_recv, chan_send;
    long long taken_at;
} race;

static ssize_t real_sendmsg(int s, const struct msghdr *m, int flags)
{
    return (ssize_t)syscall(SYS_sendmsg, s, m, flags);
}

static int real_poll(struct pollfd *p, nfds_t n, int timeout)
{
#ifdef SYS_poll
    return (int)syscall(SYS_poll, p, n, timeout);
#else
    struct timespec ts, *tp = NULL;

    if (timeout >= 0) {
        ts.tv_sec = timeout / 1000;
        ts.tv_nsec = (long)(timeout % 1000) * 1000000L;
        tp = &ts;
    }
    return (int)syscall(SYS_ppoll, p, n, tp, NULL, (size_t)8);
#endif
}

static void race_drain(void)
{
    static char buf[4096];
    unsigned hops;
    size_t len;
    int fd;

    while (pc_chan_recv(race.chan_recv, &fd, &hops, buf, sizeof(buf), &len)
           == 0) {
        close(fd);
    }
}

/* glibc declares poll's array write-only; this poll reads it. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
int poll(struct pollfd *p, nfds_t n, int timeout)
{
    int waits_for_room = race.armed && n == 1
                         && p[0].fd == race.chan_send
                         && (p[0].events & POLLOUT);

    if (waits_for_room && race.armed == 1) {
        race_drain();
        race.armed = 2;
    }
    else if (waits_for_room && race.armed == 3) {
        long long due = race.taken_at + 50, now = now_ms();

        if (now < due && timeout != 0) {
            long long nap = due - now;

            if (timeout > 0 && timeout < nap) {
                nap = timeout;
            }
            usleep((useconds_t)(nap * 1000));
            now = now_ms();
        }
        if (now >= due) {
            race_drain();
            race.armed = 4;
        }
    }
    return real_poll(p, n, timeout);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

ssize_t sendmsg(int s, const struct msghdr *m, int flags)
{
    if (race.armed == 2 && s == race.chan_send) {
        /* Another sender takes the room first: copies of this record. */
        while (real_sendmsg(s, m, flags | MSG_DONTWAIT) >= 0) {
        }
        race.taken_at = now_ms();
        race.armed = 3;
    }
    return real_sendmsg(s, m, flags);
}

/* Every child of a pool sends on the same sending end.  When the
 * receiver makes room, all waiting senders wake and the first ones take
 * it: a sender that finds it gone must wait on until its own timeout,
 * not give up at once. */
static void test_lost_room_waits_on(void)
{
    static char payload[1000];
    int sv[2], sp[2], filled = 0, rv, reached;
    struct iovec iov;
    long long t0, dt;

    iov.iov_base = payload;
    iov.iov_len = sizeof(payload);
    CHECK_RV(pc_chan_pair(sv, 0), 0);
    if (stream_pair(sp) != 0) {
        close_pair(sv);
        return;
    }
    while (pc_chan_send(sv[1], sp[0], 0, &iov, 1, 0) == 0 && filled < 100000) {
        filled++;
    }
    CHECK_INT(filled, >, 0);

    race.chan_recv = sv[0];
    race.chan_send = sv[1];
    race.armed = 1;
    t0 = now_ms();
    rv = pc_chan_send(sv[1], sp[0], 5, &iov, 1, 10000);
    dt = now_ms() - t0;
    reached = race.armed;
    race.armed = 0;

    if (reached < 3) {
        fail_at(__FILE__, __LINE__, "the seam did not fire (state %d): "
                "pc_chan_send no longer waits with poll() and retries with "
                "sendmsg(); adapt this test", reached);
    }
    else if (rv != 0) {
        fail_at(__FILE__, __LINE__, "pc_chan_send returned %d (%s) after "
                "%lld ms of a 10000 ms timeout: it gave up when the room it "
                "was woken for was taken by another sender, although the "
                "receiver read again 50 ms later", rv, strerror(rv), dt);
    }
    CHECK_INT(dt, <, 5000);
    race_drain();
    close_pair(sv);
    close(sp[0]);
    CHECK(peer_gone(sp[1]));
    close(sp[1]);
}

/* ------------------------------------------------------------------ */
/* The runner                                                          */

typedef struct test_t {
    const char *name;
    void (*fn)(void);
} test_t;

static const test_t tests[] = {
    { "one_record", test_one_record },
    { "many_records_in_order", test_many_records },
    { "across_fork", test_across_fork },
    { "bad_records_refused", test_bad_records },
    { "empty_payload_and_eof", test_empty_payload_and_eof },
    { "ctrunc_out_of_descriptors", test_ctrunc_out_of_fds },
    { "send_timeout_and_epipe", test_send_timeout_and_epipe },
    { "send_argument_limits", test_send_limits },
    { "zero_byte_record_is_not_eof", test_zero_byte_record },
    { "concurrent_senders", test_concurrent_senders },
    { "send_epipe_after_receiver_closed_with_queue",
      test_send_epipe_after_queued_close },
    { "lost_room_waits_on", test_lost_room_waits_on },
};

static volatile sig_atomic_t got_sigpipe;

static void on_sigpipe(int sig)
{
    (void)sig;
    got_sigpipe = 1;
}

static void on_alarm(int sig)
{
    static const char msg1[] = "FAIL (timed out) ";
    (void)sig;
    if (write(1, msg1, sizeof(msg1) - 1) < 0
        || write(1, t_name, strlen(t_name)) < 0
        || write(1, "\n", 1) < 0) {
        /* nothing more to do */
    }
    _exit(2);
}

static int selected(const char *name, int argc, char **argv)
{
    int i;

    if (argc < 2) {
        return 1;
    }
    for (i = 1; i < argc; i++) {
        if (strstr(name, argv[i]) != NULL) {
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    size_t i;

    setvbuf(stdout, NULL, _IOLBF, 0);
    /* A send without MSG_NOSIGNAL to a dead receiver raises SIGPIPE:
     * caught and counted as a failure of the test that caused it. */
    signal(SIGPIPE, on_sigpipe);
    signal(SIGALRM, on_alarm);

    for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        fd_snap before, after;

        if (!selected(tests[i].name, argc, argv)) {
            continue;
        }
        t_name = tests[i].name;
        t_ctx = "";
        t_fail = 0;
        count_fds(&before);
        alarm(60);
        tests[i].fn();
        alarm(0);
        t_ctx = "";
        if (got_sigpipe) {
            fail_at(__FILE__, __LINE__, "SIGPIPE was raised");
            got_sigpipe = 0;
        }
        count_fds(&after);
        if (after.n != before.n) {
            fail_at(__FILE__, __LINE__, "open descriptors: %d before, "
                    "%d after", before.n, after.n);
            report_fd_diff(&before, &after);
        }
        fflush(stderr);
        if (t_fail == 0) {
            printf("ok   %2zu %s\n", i + 1, t_name);
            passed++;
        }
        else {
            printf("FAIL %2zu %s (%d failed checks)\n", i + 1, t_name,
                   t_fail);
            failed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
