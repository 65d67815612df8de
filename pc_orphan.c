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

/* pc_orphan.c: a listener whose vhosts all belong to one pool (an IP- or
 * port-based tenant) is accepted by that pool's children only.  While the
 * parent keeps that pool down (its children cannot become its user,
 * PC0205, or die right after start, PC0206) and none of its children is
 * left, nobody accepts there: the kernel would complete every handshake
 * and leave the clients waiting in the listen backlog until they gave
 * up.  Such connections are answered 503 instead, as a sender answers
 * them on a shared listener; TLS connections are closed (a plain-text
 * answer means nothing to them), so that they fail at once too.
 *
 * The parent only looks (poll with no wait).  Accepting and answering is
 * left to a short-lived helper process per pool, as for a stalled
 * channel (pc_stall.c), for the same reasons: the listening socket is
 * shared with the pool's tenants, who can clear its O_NONBLOCK or give
 * it an SO_LINGER that accepted sockets inherit, and so make an accept
 * or a close wait; and a client socket the parent held would be
 * inherited by every child it forks meanwhile.  The helper keeps only
 * those listeners, runs as the pool's user, answers without reading the
 * requests, drops what the clients send until they close (so that the
 * close does not reset an unread 503), and exits; the parent kills it
 * if it takes longer than PC_ORPHAN_LIFE. */

#include "perchild.h"
#include "pc_handoff.h"
#include "pc_orphan.h"
#include "http_log.h"
#include "http_main.h"
#include "apr_portable.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

APLOG_USE_MODULE(mpm_perchild);

/* Helpers running at once: at most two per pool (one accepting, one
 * letting its clients read their answers). */
#define PC_ORPHAN_HELPERS 16
#define PC_ORPHAN_PER_POOL 2
/* Listeners one helper watches, connections it answers. */
#define PC_ORPHAN_LISTENERS 64
#define PC_ORPHAN_CONNS 256
/* A helper accepts for this long, then lets its clients read their
 * answers for PC_ORPHAN_LINGER more; the parent kills it after
 * PC_ORPHAN_LIFE. */
#define PC_ORPHAN_ACCEPT_MS 1000
#define PC_ORPHAN_LINGER_MS 2000
#define PC_ORPHAN_LIFE apr_time_from_sec(5)
/* After a helper failed (could not become the pool's user), the pool's
 * listeners are left alone this long. */
#define PC_ORPHAN_BACKOFF apr_time_from_sec(10)

typedef struct {
    pid_t pid;
    int pool;
    apr_time_t started;
} helper_t;

static helper_t helpers[PC_ORPHAN_HELPERS];

/* Per generation, per listener: the pools that accept it (most have one)
 * and whether PC0217 was said for its address in this outage. */
typedef struct {
    int *pools;
    int npools;
    int said;
    int pool;                /* the pool said to be down */
} watch_t;

static watch_t *watches;
static apr_time_t *backoff;  /* per pool: no helper before */
static int scan_from;        /* where the last round's scan began */

void pc_orphan_init(void)
{
    int i, j, n = pc_conf->listeners->nelts;

    watches = apr_pcalloc(pc_pconf, (n + 1) * sizeof(*watches));
    backoff = apr_pcalloc(pc_pconf, (pc_conf->pools->nelts + 1)
                                    * sizeof(*backoff));
    for (i = 0; i < n; i++) {
        const pc_listener_t *pl = &APR_ARRAY_IDX(pc_conf->listeners, i,
                                                 pc_listener_t);

        watches[i].pools = apr_palloc(pc_pconf, (pc_conf->pools->nelts + 1)
                                                * sizeof(int));
        for (j = 0; j < pc_conf->pools->nelts; j++) {
            if (pc_pools_accepts(j, pl)) {
                watches[i].pools[watches[i].npools++] = j;
            }
        }
    }
}

/* Has 'pl' a child alive that accepts bucket 'bucket' (even if the
 * parent keeps the pool down: a hold-off stops one slot's crash loop,
 * not its other children)? */
static int bucket_has_child(const pc_pool_t *pl, int bucket)
{
    int i;

    for (i = 0; i < pl->slots; i++) {
        int slot = pl->first_slot + i;
        pid_t pid = pc_slots_pid(slot);

        if (pid > 0 && pc_pools_takes_bucket(pl->index, slot, bucket)
            && (kill(pid, 0) == 0 || errno == EPERM)) {
            return 1;
        }
    }
    return 0;
}

/* The pool to answer for listener 'i' if no pool can take its
 * connections now, else -1.  A pool that is up may be replacing a child:
 * its connections wait for it, as under worker. */
static int orphaned(int i)
{
    const pc_listener_t *l = &APR_ARRAY_IDX(pc_conf->listeners, i,
                                            pc_listener_t);
    int j, down = -1;

    for (j = 0; j < watches[i].npools; j++) {
        int pool = watches[i].pools[j];
        const pc_pool_t *pl = pc_pools_get(pool);

        if (pl->slots > 0 && (!pc_parent_pool_down(pool)
                              || bucket_has_child(pl, l->bucket))) {
            return -1;
        }
        if (down < 0) {
            down = pool;
        }
    }
    return down;
}

static int listener_fd(int i)
{
    const pc_listener_t *pl = &APR_ARRAY_IDX(pc_conf->listeners, i,
                                             pc_listener_t);
    apr_os_sock_t fd;

    if (apr_os_sock_get(&fd, pl->lr->sd) != APR_SUCCESS) {
        return -1;
    }
    return fd;
}

/* Is a connection waiting on listener 'i'?  (poll never waits here.)
 * A listener shut down by a process holding it (PC0112) reads as
 * ready and hung up: nothing waits there. */
static int pending(int i)
{
    struct pollfd p;

    p.fd = listener_fd(i);
    p.events = POLLIN;
    return p.fd >= 0 && poll(&p, 1, 0) == 1 && p.revents == POLLIN;
}

/* ---- the helper ---- */

typedef struct {
    struct pollfd p[PC_ORPHAN_LISTENERS + PC_ORPHAN_CONNS];
    int tls[PC_ORPHAN_LISTENERS];
    int nlisten, nconns;
} helper_set_t;

/* Keeps only the listeners (moved to 3, 4, ...) and the standard
 * descriptors, and becomes the pool's user, undumpable. */
static int helper_become(helper_set_t *hs, const int *fds, int n,
                         const pc_pool_t *pl, pid_t parent)
{
    int i;

    for (i = 0; i < n; i++) {
        int fd = fcntl(fds[i], F_DUPFD, 3 + n);

        if (fd < 0) {
            return -1;
        }
        hs->p[i].fd = fd;
    }
    for (i = 0; i < n; i++) {
        int flags;

        if (dup2(hs->p[i].fd, 3 + i) != 3 + i) {
            return -1;
        }
        hs->p[i].fd = 3 + i;
        hs->p[i].events = POLLIN;
        /* The tenant's children set it too, and may clear it: the
         * alarm (helper_main) ends an accept that waits all the same. */
        flags = fcntl(3 + i, F_GETFL);
        fcntl(3 + i, F_SETFL, (flags < 0 ? 0 : flags) | O_NONBLOCK);
    }
    pc_close_from(3 + n);
    hs->nlisten = n;
    /* After the change of user, which clears the death signal; a
     * parent gone before it was set is checked for. */
    return setgroups(0, NULL) == 0
           && setresgid(pl->gid, pl->gid, pl->gid) == 0
           && setresuid(pl->uid, pl->uid, pl->uid) == 0
           && prctl(PR_SET_DUMPABLE, 0) == 0
           && prctl(PR_SET_PDEATHSIG, SIGKILL) == 0
           && getppid() == parent ? 0 : -1;
}

static volatile sig_atomic_t stop_now;

/* SIGUSR2 (the parent: the pool is back) and SIGALRM (a deadline) only
 * interrupt what waits: installed without SA_RESTART. */
static void helper_signal(int sig)
{
    if (sig == SIGUSR2) {
        stop_now = 1;
    }
}

/* httpd's handlers (restart, stop, core dump) mean nothing here. */
static void helper_signals(void)
{
    static const int dfl[] = { SIGTERM, SIGHUP, SIGUSR1, SIGINT, SIGWINCH,
                               SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE };
    struct sigaction sa;
    sigset_t none;
    unsigned i;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (i = 0; i < sizeof(dfl) / sizeof(dfl[0]); i++) {
        sigaction(dfl[i], &sa, NULL);
    }
    sa.sa_handler = helper_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Interrupts whatever waits at 'ms' from now (and every 100 ms after:
 * an accept on a listener a tenant made blocking). */
static void helper_alarm(int ms)
{
    struct itimerval it;

    memset(&it, 0, sizeof(it));
    it.it_value.tv_sec = ms / 1000;
    it.it_value.tv_usec = (ms % 1000) * 1000 + 1;
    it.it_interval.tv_usec = 100000;
    setitimer(ITIMER_REAL, &it, NULL);
}

static void helper_answer(helper_set_t *hs, int fd, int tls)
{
    static const struct linger off = { 0, 0 };
    char buf[512];
    int len;

    /* A listener's SO_LINGER passes to what it accepts: never let a
     * close wait for the client. */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &off, sizeof(off));
    if (tls || hs->nconns == PC_ORPHAN_CONNS) {
        close(fd);
        return;
    }
    len = pc_handoff_refusal(buf, sizeof(buf), 0);
    if (send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) != len) {
        close(fd);
        return;
    }
    shutdown(fd, SHUT_WR);
    hs->p[PC_ORPHAN_LISTENERS + hs->nconns].fd = fd;
    hs->p[PC_ORPHAN_LISTENERS + hs->nconns].events = POLLIN;
    hs->nconns++;
}

static void helper_accept(helper_set_t *hs, int i)
{
    int n;

    for (n = 0; n < PC_ORPHAN_CONNS && !stop_now; n++) {
        struct pollfd p = { hs->p[i].fd, POLLIN, 0 };
        int fd;

        /* Only what is there: the listener may have been made blocking
         * again meanwhile. */
        if (poll(&p, 1, 0) != 1 || p.revents != POLLIN) {
            return;
        }
        fd = accept4(hs->p[i].fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        helper_answer(hs, fd, hs->tls[i]);
    }
}

/* Drops what an answered client sends; closes it at its end. */
static void helper_drain(helper_set_t *hs, int k)
{
    struct pollfd *c = &hs->p[PC_ORPHAN_LISTENERS + k];
    char sink[4096];
    ssize_t got = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);

    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK
                     && errno != EINTR)) {
        close(c->fd);
        c->fd = -1;               /* poll skips it from now on */
    }
}

static void helper_main(const int *fds, const int *tls, int n,
                        const pc_pool_t *pl, pid_t parent)
{
    static helper_set_t hs;
    apr_time_t now = pc_monotonic_now();
    apr_time_t stop_accepting = now
                                + apr_time_from_msec(PC_ORPHAN_ACCEPT_MS);
    apr_time_t end = stop_accepting
                     + apr_time_from_msec(PC_ORPHAN_LINGER_MS);
    int i, open;

    for (i = 0; i < PC_ORPHAN_LISTENERS + PC_ORPHAN_CONNS; i++) {
        hs.p[i].fd = -1;
    }
    memcpy(hs.tls, tls, n * sizeof(int));
    helper_signals();
    if (helper_become(&hs, fds, n, pl, parent) != 0) {
        _exit(1);
    }
    helper_alarm(PC_ORPHAN_ACCEPT_MS);
    while ((now = pc_monotonic_now()) < end) {
        apr_time_t until = end;

        if (stop_now && now < stop_accepting) {
            stop_accepting = now;
        }
        if (now < stop_accepting) {
            until = stop_accepting;
        }
        else if (hs.nlisten > 0) {
            for (i = 0; i < hs.nlisten; i++) {
                close(hs.p[i].fd);   /* the rest waits for the next helper */
                hs.p[i].fd = -1;
            }
            hs.nlisten = 0;
        }
        for (i = 0, open = 0; i < hs.nconns; i++) {
            open += hs.p[PC_ORPHAN_LISTENERS + i].fd >= 0;
        }
        if (hs.nlisten == 0 && open == 0) {
            break;
        }
        if (poll(hs.p, PC_ORPHAN_LISTENERS + hs.nconns,
                 (int)apr_time_as_msec(until - now) + 1) < 0
            && errno != EINTR) {
            break;
        }
        for (i = 0; i < hs.nlisten; i++) {
            if (hs.p[i].revents & (POLLHUP | POLLERR | POLLNVAL)) {
                close(hs.p[i].fd);    /* shut down: would spin */
                hs.p[i].fd = -1;
            }
            else if (hs.p[i].revents & POLLIN) {
                helper_accept(&hs, i);
            }
        }
        for (i = 0; i < hs.nconns; i++) {
            if (hs.p[PC_ORPHAN_LISTENERS + i].fd >= 0
                && hs.p[PC_ORPHAN_LISTENERS + i].revents) {
                helper_drain(&hs, i);
            }
        }
    }
    /* Descriptors closed by exit never wait (SO_LINGER is off). */
    _exit(0);
}

/* ---- the parent ---- */

/* May 'pool' have a new helper: none of its helpers still accepts
 * (one that only lets its clients read their answers does not count),
 * it has fewer than PC_ORPHAN_PER_POOL, and none failed lately? */
static int may_start(int pool, apr_time_t now)
{
    int h, mine = 0;

    for (h = 0; h < PC_ORPHAN_HELPERS; h++) {
        if (helpers[h].pid <= 0 || helpers[h].pool != pool) {
            continue;
        }
        if (now - helpers[h].started
            < apr_time_from_msec(PC_ORPHAN_ACCEPT_MS)) {
            return 0;
        }
        mine++;
    }
    return mine < PC_ORPHAN_PER_POOL && now >= backoff[pool];
}

/* The pool is back: its helpers stop accepting at once. */
static void stop_helpers(int pool)
{
    int h;

    for (h = 0; h < PC_ORPHAN_HELPERS; h++) {
        if (helpers[h].pid > 0 && helpers[h].pool == pool) {
            kill(helpers[h].pid, SIGUSR2);
        }
    }
}

int pc_orphan_reaped(pid_t pid, int failed)
{
    int h, pool;

    for (h = 0; pid > 0 && h < PC_ORPHAN_HELPERS; h++) {
        if (helpers[h].pid != pid) {
            continue;
        }
        helpers[h].pid = 0;
        pool = helpers[h].pool;
        if (failed && backoff != NULL && pool < pc_conf->pools->nelts) {
            /* Not a fork every round for as long as clients come. */
            backoff[pool] = pc_monotonic_now() + PC_ORPHAN_BACKOFF;
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                         "PC0218: the helper answering for pool %s failed "
                         "(could it not become the pool's user?): its own "
                         "listeners go unanswered for %d seconds",
                         pc_pools_label(pc_pools_get(pool)),
                         (int)apr_time_sec(PC_ORPHAN_BACKOFF));
        }
        return 1;
    }
    return 0;
}

/* Starts a helper for the waiting listeners of 'pool'. */
static void helper_start(int pool, const int *fds, const int *tls, int n)
{
    int h;
    pid_t pid, parent;

    for (h = 0; h < PC_ORPHAN_HELPERS && helpers[h].pid > 0; h++) {
        continue;
    }
    if (h == PC_ORPHAN_HELPERS) {
        return;                   /* next round */
    }
    parent = getpid();
    pid = fork();
    if (pid == 0) {
        helper_main(fds, tls, n, pc_pools_get(pool), parent);  /* no return */
    }
    if (pid > 0) {
        helpers[h].pid = pid;
        helpers[h].pool = pool;
        helpers[h].started = pc_monotonic_now();
    }
}

/* PC0217, once per address and outage (a listener has a copy per
 * bucket with ListenCoresBucketsRatio). */
static void say(int i, int pool)
{
    const pc_listener_t *pl = &APR_ARRAY_IDX(pc_conf->listeners, i,
                                             pc_listener_t);
    int j;

    for (j = 0; j < pc_conf->listeners->nelts; j++) {
        const pc_listener_t *other = &APR_ARRAY_IDX(pc_conf->listeners, j,
                                                    pc_listener_t);

        if (j != i && watches[j].said
            && apr_sockaddr_equal(other->lr->bind_addr, pl->lr->bind_addr)
            && other->lr->bind_addr->port == pl->lr->bind_addr->port) {
            watches[i].said = 1;
            return;
        }
    }
    watches[i].said = 1;
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, ap_server_conf,
                 "PC0217: listener %pI is accepted by no running pool "
                 "(pool %s %s): its connections are %s meanwhile",
                 pl->lr->bind_addr, pc_pools_label(pc_pools_get(pool)),
                 pc_pools_get(pool)->slots > 0
                 ? "is down" : "has no child: ServerLimit is full, PC0106",
                 pl->tls ? "closed at once (TLS)" : "answered 503");
}

void pc_orphan_check(void)
{
    apr_time_t now = pc_monotonic_now();
    int fds[PC_ORPHAN_LISTENERS], tls[PC_ORPHAN_LISTENERS];
    int h, i, k, m, n, pool, nl = pc_conf->listeners->nelts;

    if (pc_one_process || watches == NULL || nl == 0) {
        return;
    }
    for (h = 0; h < PC_ORPHAN_HELPERS; h++) {
        if (helpers[h].pid > 0 && now - helpers[h].started > PC_ORPHAN_LIFE) {
            kill(helpers[h].pid, SIGKILL);    /* stuck on a descriptor */
        }
    }
    /* Each round starts one listener further: no listener (or pool)
     * waits behind the others for helpers. */
    scan_from = (scan_from + 1) % nl;
    for (k = 0; k < nl; k++) {
        i = (scan_from + k) % nl;
        if ((pool = orphaned(i)) < 0) {
            if (watches[i].said) {
                watches[i].said = 0;
                stop_helpers(watches[i].pool);
            }
            continue;
        }
        if (!may_start(pool, now) || !pending(i)) {
            continue;
        }
        /* Every listener of that pool nobody takes, in one helper. */
        for (n = 0, m = 0; m < nl && n < PC_ORPHAN_LISTENERS; m++) {
            int j = (i + m) % nl;

            if (orphaned(j) == pool && (fds[n] = listener_fd(j)) >= 0) {
                tls[n++] = APR_ARRAY_IDX(pc_conf->listeners, j,
                                         pc_listener_t).tls;
                if (!watches[j].said) {
                    watches[j].pool = pool;
                    say(j, pool);
                }
            }
        }
        helper_start(pool, fds, tls, n);
    }
}
