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

/* pc_park.c: the dispatch pool's keep-alive connections wait without a
 * thread.
 *
 * With a dispatch pool, each tenant's child serves one request and gives
 * the connection back; a dispatch worker then waits for the client's
 * next request, for up to KeepAliveTimeout.  A thread per idle client,
 * as in worker, but the dispatch pool is small and accepts for everyone:
 * a few dozen idle browsers would leave it no thread to read anybody's
 * request.  So a connection given back whose next request has not come
 * within a moment (PC_PARK_GRACE_MS, less when few workers are idle) is
 * parked: one thread per child watches the parked descriptors (epoll,
 * one-shot) and the time, hands a connection whose next request has come
 * to an idle worker (an eventfd in every worker's epoll set, one wake-up
 * per connection), and closes those that stay idle past the keep-alive
 * timeout httpd would apply, as httpd would.  A client that sends its
 * next request at once (a proxy, a page's resources) never waits in the
 * park, which costs one more wake-up per request.  The park holds at
 * most half the descriptors the child may open; beyond that the
 * longest-parked connection is closed, as an idle keep-alive connection
 * may be at any time.
 */

#include "perchild.h"
#include "pc_park.h"
#include "http_log.h"
#include "http_main.h"
#include "http_vhost.h"
#include "apr_atomic.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

APLOG_USE_MODULE(mpm_perchild);

/* How long a worker waits on a connection given back before parking it:
 * longer than a busy client's pause between requests, short enough that
 * a flood of idle clients holds each thread only briefly; shorter still
 * when most workers are busy. */
#define PC_PARK_GRACE_MS 100
#define PC_PARK_GRACE_BUSY_MS 20

/* Local addresses whose keep-alive timeout is known (a handful of
 * listeners; more are looked up every time). */
#define PC_PARK_ADDRS 32

typedef struct pc_parked_t {
    struct pc_parked_t *prev, *next;
    pc_passed_t passed;          /* bytes: the copy right after this */
    apr_time_t deadline;         /* closed if still idle then */
    int ready;                   /* on the ready list, not the parked */
} pc_parked_t;

typedef struct {
    pc_parked_t *head, *tail;
    int n;
} pc_list_t;

typedef struct {
    struct sockaddr_storage addr;
    apr_interval_time_t timeout;
} pc_addr_timeout_t;

static struct {
    int on;
    int stopping;                /* under the lock: park nothing more */
    int threads;
    volatile apr_uint32_t idle;  /* workers waiting for a job */
    int max;                     /* most connections parked at once */
    int epfd;                    /* the parked descriptors, one-shot */
    int readyfd;                 /* eventfd (semaphore): one per ready */
    int stopfd;                  /* eventfd: ends the watching thread */
    apr_pool_t *pool;            /* parent of the look-ups' pools */
    process_score *ps;           /* keep_alive: how many are parked */
    pthread_mutex_t lock;
    pc_list_t parked;            /* in the order they were parked */
    pc_list_t ready;             /* next request came, for a worker */
    pc_addr_timeout_t addrs[PC_PARK_ADDRS];
    int naddrs;
    pthread_t watcher;
    int watching;
} park;

static void list_add(pc_list_t *l, pc_parked_t *e)
{
    e->next = NULL;
    e->prev = l->tail;
    if (l->tail != NULL) {
        l->tail->next = e;
    }
    else {
        l->head = e;
    }
    l->tail = e;
    l->n++;
}

static void list_del(pc_list_t *l, pc_parked_t *e)
{
    if (e->prev != NULL) {
        e->prev->next = e->next;
    }
    else {
        l->head = e->next;
    }
    if (e->next != NULL) {
        e->next->prev = e->prev;
    }
    else {
        l->tail = e->prev;
    }
    e->prev = e->next = NULL;
    l->n--;
}

/* Reads what the client sent, if anything, before closing: a close with
 * unread bytes would reset the connection instead of ending it. */
static void close_parked(pc_parked_t *e)
{
    char buf[4096];
    int i;

    for (i = 0; i < 16; i++) {
        if (recv(e->passed.fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0) {
            break;
        }
    }
    close(e->passed.fd);
    free(e);
}

/* Caller holds the lock: takes e out of the watch and its list. */
static void unpark(pc_parked_t *e)
{
    epoll_ctl(park.epfd, EPOLL_CTL_DEL, e->passed.fd, NULL);
    list_del(&park.parked, e);
}

/* Caller holds the lock: the next request came for e. */
static void make_ready(pc_parked_t *e)
{
    uint64_t one = 1;

    unpark(e);
    e->ready = 1;
    list_add(&park.ready, e);
    park.ps->keep_alive = (apr_uint32_t)(park.parked.n + park.ready.n);
    /* One write per connection: each wakes one idle worker. */
    if (write(park.readyfd, &one, sizeof(one)) == -1) {
        /* Cannot overflow: at most one per parked connection. */
    }
}

/* Caller holds the lock: closes what stayed idle too long.  Returns the
 * milliseconds until the next deadline (at most a second). */
static int expire(void)
{
    apr_time_t now = apr_time_now(), next = now + apr_time_from_sec(1);
    pc_parked_t *e, *after;

    for (e = park.parked.head; e != NULL; e = after) {
        after = e->next;
        if (e->deadline <= now) {
            unpark(e);
            close_parked(e);
        }
        else if (e->deadline < next) {
            next = e->deadline;
        }
    }
    return (int)((next - now + 999) / 1000);
}

static void *watch(void *arg)
{
    struct epoll_event evs[64];
    apr_time_t logged = 0;
    int wait_ms = 1000;

    for (;;) {
        int n = epoll_wait(park.epfd, evs, 64, wait_ms), i;

        if (n == -1 && errno != EINTR) {
            if (apr_time_now() - logged > apr_time_from_sec(60)) {
                ap_log_error(APLOG_MARK, APLOG_ERR, errno, ap_server_conf,
                             "PC0412: waiting on parked connections "
                             "failed");
                logged = apr_time_now();
            }
            apr_sleep(apr_time_from_msec(100));
        }
        pthread_mutex_lock(&park.lock);
        for (i = 0; i < n; i++) {
            pc_parked_t *e = evs[i].data.ptr;
            if (e == NULL) {
                pthread_mutex_unlock(&park.lock);
                return NULL;            /* the stop event */
            }
            if (e->ready) {
                continue;
            }
            if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
                /* Reset or closed for good: no worker needed. */
                unpark(e);
                close_parked(e);
            }
            else {
                make_ready(e);
            }
        }
        wait_ms = expire();
        park.ps->keep_alive = (apr_uint32_t)(park.parked.n + park.ready.n);
        pthread_mutex_unlock(&park.lock);
    }
}

static int same_addr(const struct sockaddr_storage *a,
                     const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) {
        return 0;
    }
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port
               && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a;
        const struct sockaddr_in6 *y = (const void *)b;
        return x->sin6_port == y->sin6_port
               && memcmp(&x->sin6_addr, &y->sin6_addr,
                         sizeof(x->sin6_addr)) == 0;
    }
    return 0;
}

/* Caller holds the lock: the KeepAliveTimeout httpd applies between two
 * requests on a connection to 'local': its address's default vhost's
 * (the same lookup the core makes for a new connection). */
static apr_interval_time_t keepalive_for(const struct sockaddr_storage *ss)
{
    char ip[INET6_ADDRSTRLEN];
    const void *bin;
    apr_sockaddr_t *sa;
    conn_rec c;
    apr_pool_t *tmp;
    apr_port_t port;
    apr_interval_time_t timeout;
    int i;

    for (i = 0; i < park.naddrs; i++) {
        if (same_addr(&park.addrs[i].addr, ss)) {
            return park.addrs[i].timeout;
        }
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)ss;
        bin = &s6->sin6_addr;
        port = ntohs(s6->sin6_port);
    }
    else {
        const struct sockaddr_in *s4 = (const void *)ss;
        bin = &s4->sin_addr;
        port = ntohs(s4->sin_port);
    }
    /* The looked-up address lives only for the look-up: beyond the
     * cache's size, every look-up would otherwise add to a pool that
     * lives as long as the child. */
    apr_pool_create(&tmp, park.pool);
    memset(&c, 0, sizeof(c));
    c.base_server = ap_server_conf;
    if (inet_ntop(ss->ss_family, bin, ip, sizeof(ip)) != NULL
        && apr_sockaddr_info_get(&sa, ip, ss->ss_family == AF_INET6
                                           ? APR_INET6 : APR_INET,
                                 port, 0, tmp) == APR_SUCCESS) {
        c.local_addr = sa;
        ap_update_vhost_given_ip(&c);
    }
    timeout = c.base_server->keep_alive_timeout;
    apr_pool_destroy(tmp);
    if (park.naddrs < PC_PARK_ADDRS) {
        park.addrs[park.naddrs].addr = *ss;
        park.addrs[park.naddrs++].timeout = timeout;
    }
    return timeout;
}

static int max_parked(void)
{
    struct rlimit rl;
    long n = 1024;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        n = (long)rl.rlim_cur;
    }
    return n / 2 > 16 ? (int)(n / 2) : 16;
}

static void undo_init(int err)
{
    if (park.epfd >= 0) {
        close(park.epfd);
    }
    if (park.readyfd >= 0) {
        close(park.readyfd);
    }
    if (park.stopfd >= 0) {
        close(park.stopfd);
    }
    ap_log_error(APLOG_MARK, APLOG_WARNING, err, ap_server_conf,
                 "PC0413: cannot set up parking for idle keep-alive "
                 "connections; each waits in a worker thread");
}

int pc_park_init(apr_pool_t *pchild, int slot, int threads)
{
    struct epoll_event ev;
    int err = 0;

    memset(&park, 0, sizeof(park));
    if (!pc_pools_get(pc_my_pool)->dispatch) {
        return -1;              /* tenants never get connections back */
    }
    park.threads = threads;
    park.ps = ap_get_scoreboard_process(slot);
    park.ps->keep_alive = 0;
    park.max = max_parked();
    apr_pool_create(&park.pool, pchild);
    park.epfd = epoll_create1(EPOLL_CLOEXEC);
    park.readyfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
    park.stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&park.lock, NULL);
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    if (park.epfd == -1 || park.readyfd == -1 || park.stopfd == -1
        || epoll_ctl(park.epfd, EPOLL_CTL_ADD, park.stopfd, &ev) == -1) {
        err = errno;
    }
    else {
        err = pthread_create(&park.watcher, NULL, watch, NULL);
    }
    if (err != 0) {
        undo_init(err);
        return -1;
    }
    park.watching = 1;
    park.on = 1;
    return park.readyfd;
}

void pc_park_idle(int idle)
{
    if (park.on) {
        if (idle) {
            apr_atomic_inc32(&park.idle);
        }
        else {
            apr_atomic_dec32(&park.idle);
        }
    }
}

/* A new entry for 'passed', its bytes copied. */
static pc_parked_t *new_entry(const pc_passed_t *passed)
{
    pc_parked_t *e = malloc(sizeof(*e) + passed->len);

    if (e != NULL) {
        memset(e, 0, sizeof(*e));
        e->passed = *passed;
        e->passed.bytes = (char *)(e + 1);
        memcpy(e->passed.bytes, passed->bytes, passed->len);
    }
    return e;
}

/* Does the next request come within the grace period? */
static int request_comes(int fd)
{
    struct pollfd pfd;
    int grace = apr_atomic_read32(&park.idle) > (apr_uint32_t)park.threads / 4
                ? PC_PARK_GRACE_MS : PC_PARK_GRACE_BUSY_MS;

    pfd.fd = fd;
    pfd.events = POLLIN | POLLRDHUP;
    pfd.revents = 0;
    return poll(&pfd, 1, grace) != 0;   /* (or an error: serve it) */
}

int pc_park_offer(const pc_passed_t *passed)
{
    struct epoll_event ev;
    pc_parked_t *e;
    int rv = 1;

    if (!park.on || !pc_handoff_parkable(passed)
        || request_comes(passed->fd)
        || (e = new_entry(passed)) == NULL) {
        return 0;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    ev.data.ptr = e;
    pthread_mutex_lock(&park.lock);
    if (park.stopping) {
        /* An idle keep-alive connection ends with the child. */
        close_parked(e);
    }
    else if (epoll_ctl(park.epfd, EPOLL_CTL_ADD, passed->fd, &ev) == 0) {
        if (park.parked.n >= park.max) {
            pc_parked_t *oldest = park.parked.head;
            unpark(oldest);
            close_parked(oldest);
        }
        e->deadline = apr_time_now()
                      + (passed->keepalive_timeout >= 0
                         ? passed->keepalive_timeout
                         : keepalive_for(&passed->local));
        list_add(&park.parked, e);
        park.ps->keep_alive = (apr_uint32_t)(park.parked.n
                                             + park.ready.n);
    }
    else {
        free(e);
        rv = 0;
    }
    pthread_mutex_unlock(&park.lock);
    return rv;
}

int pc_park_take(pc_passed_t *out, char *buf)
{
    uint64_t one;
    pc_parked_t *e;

    if (!park.on || read(park.readyfd, &one, sizeof(one)) != sizeof(one)) {
        return 0;
    }
    pthread_mutex_lock(&park.lock);
    if ((e = park.ready.head) != NULL) {
        list_del(&park.ready, e);
        park.ps->keep_alive = (apr_uint32_t)(park.parked.n
                                             + park.ready.n);
    }
    pthread_mutex_unlock(&park.lock);
    if (e == NULL) {
        return 0;
    }
    *out = e->passed;
    out->bytes = buf;
    memcpy(buf, e->passed.bytes, e->passed.len);
    free(e);
    return 1;
}

void pc_park_nudge(void)
{
    uint64_t zero = 0;

    /* A worker woken for a ready connection may have taken another job
     * (it takes one event per wake-up): wake another for it.  Writing
     * 0 wakes without counting. */
    if (park.on && park.ready.head != NULL) {
        if (write(park.readyfd, &zero, sizeof(zero)) == -1) {
            /* Nothing to undo. */
        }
    }
}

void pc_park_stop(void)
{
    uint64_t one = 1;
    pc_parked_t *e;

    if (!park.on) {
        return;
    }
    if (park.watching) {
        if (write(park.stopfd, &one, sizeof(one)) == -1) {
            /* A fresh eventfd takes one write. */
        }
        pthread_join(park.watcher, NULL);
        park.watching = 0;
    }
    pthread_mutex_lock(&park.lock);
    park.stopping = 1;
    while ((e = park.parked.head) != NULL) {
        unpark(e);
        close_parked(e);
    }
    while ((e = park.ready.head) != NULL) {
        list_del(&park.ready, e);
        close_parked(e);
    }
    pthread_mutex_unlock(&park.lock);
}
