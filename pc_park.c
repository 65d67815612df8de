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
 * within PC_PARK_GRACE_MS is parked: one thread per child watches the
 * parked descriptors (epoll, one-shot) and the time, hands a connection
 * whose next request has come to an idle worker (an eventfd in every
 * worker's epoll set, one wake-up per connection), and closes those that
 * stay idle past the keep-alive timeout, as httpd would.  A client that
 * sends its next request at once (a proxy, a page's resources) never
 * waits in the park, which costs one more wake-up per request.
 */

#include "perchild.h"
#include "pc_park.h"
#include "http_log.h"
#include "http_main.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

APLOG_USE_MODULE(mpm_perchild);

/* How long a worker waits on a connection given back before parking it:
 * longer than a busy client's pause between requests, short enough that
 * a flood of idle clients holds each thread only briefly. */
#define PC_PARK_GRACE_MS 100

typedef struct pc_parked_t {
    struct pc_parked_t *prev, *next;
    pc_passed_t passed;          /* bytes: the copy right after this */
    apr_time_t deadline;         /* closed if still idle then */
    int ready;                   /* on the ready list, not the parked */
} pc_parked_t;

typedef struct {
    pc_parked_t *head, *tail;
} pc_list_t;

static struct {
    int on;
    int stopping;                /* under the lock: park nothing more */
    int epfd;                    /* the parked descriptors, one-shot */
    int readyfd;                 /* eventfd (semaphore): one per ready */
    int stopfd;                  /* eventfd: ends the watching thread */
    apr_interval_time_t timeout; /* the longest KeepAliveTimeout */
    pthread_mutex_t lock;
    pc_list_t parked;            /* by deadline (all share the timeout) */
    pc_list_t ready;             /* next request came, for a worker */
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
}

static void close_parked(pc_parked_t *e)
{
    close(e->passed.fd);
    free(e);
}

/* Caller holds the lock: the next request came for e. */
static void make_ready(pc_parked_t *e)
{
    uint64_t one = 1;

    epoll_ctl(park.epfd, EPOLL_CTL_DEL, e->passed.fd, NULL);
    list_del(&park.parked, e);
    e->ready = 1;
    list_add(&park.ready, e);
    /* One write per connection: each wakes one idle worker. */
    if (write(park.readyfd, &one, sizeof(one)) == -1) {
        /* Cannot overflow: at most one per parked connection. */
    }
}

/* Caller holds the lock: closes what stayed idle too long.  Returns the
 * milliseconds until the next deadline (at most a second). */
static int expire(void)
{
    apr_time_t now = apr_time_now();
    pc_parked_t *e;

    while ((e = park.parked.head) != NULL && e->deadline <= now) {
        epoll_ctl(park.epfd, EPOLL_CTL_DEL, e->passed.fd, NULL);
        list_del(&park.parked, e);
        close_parked(e);
    }
    if (e == NULL || e->deadline - now > apr_time_from_sec(1)) {
        return 1000;
    }
    return (int)((e->deadline - now + 999) / 1000);
}

static void *watch(void *arg)
{
    struct epoll_event evs[64];
    int wait_ms = 1000;

    for (;;) {
        int n = epoll_wait(park.epfd, evs, 64, wait_ms), i;

        if (n == -1 && errno != EINTR) {
            ap_log_error(APLOG_MARK, APLOG_ERR, errno, ap_server_conf,
                         "PC0412: waiting on parked connections failed");
            apr_sleep(apr_time_from_msec(10));
        }
        pthread_mutex_lock(&park.lock);
        for (i = 0; i < n; i++) {
            pc_parked_t *e = evs[i].data.ptr;
            if (e == NULL) {
                pthread_mutex_unlock(&park.lock);
                return NULL;            /* the stop event */
            }
            if (!e->ready) {
                make_ready(e);
            }
        }
        wait_ms = expire();
        pthread_mutex_unlock(&park.lock);
    }
}

static apr_interval_time_t longest_keepalive(void)
{
    apr_interval_time_t t = 0;
    server_rec *s;

    for (s = ap_server_conf; s != NULL; s = s->next) {
        if (s->keep_alive_timeout > t) {
            t = s->keep_alive_timeout;
        }
    }
    return t;
}

int pc_park_init(void)
{
    struct epoll_event ev;

    memset(&park, 0, sizeof(park));
    if (!pc_pools_get(pc_my_pool)->dispatch) {
        return -1;              /* tenants never get connections back */
    }
    park.timeout = longest_keepalive();
    park.epfd = epoll_create1(EPOLL_CLOEXEC);
    park.readyfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
    park.stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&park.lock, NULL);
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    if (park.epfd == -1 || park.readyfd == -1 || park.stopfd == -1
        || epoll_ctl(park.epfd, EPOLL_CTL_ADD, park.stopfd, &ev) == -1
        || pthread_create(&park.watcher, NULL, watch, NULL) != 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, errno, ap_server_conf,
                     "PC0413: cannot set up parking for idle keep-alive "
                     "connections; each waits in a worker thread");
        return -1;
    }
    park.watching = 1;
    park.on = 1;
    return park.readyfd;
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
        e->deadline = apr_time_now() + park.timeout;
    }
    return e;
}

int pc_park_offer(const pc_passed_t *passed)
{
    struct epoll_event ev;
    struct pollfd pfd;
    pc_parked_t *e;
    int rv = 1;

    if (!park.on || !pc_handoff_parkable(passed)) {
        return 0;
    }
    pfd.fd = passed->fd;
    pfd.events = POLLIN | POLLRDHUP;
    pfd.revents = 0;
    if (poll(&pfd, 1, PC_PARK_GRACE_MS) != 0) {
        return 0;               /* its request came (or an error): serve */
    }
    if ((e = new_entry(passed)) == NULL) {
        return 0;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    ev.data.ptr = e;
    pthread_mutex_lock(&park.lock);
    if (park.stopping) {
        /* An idle keep-alive connection ends with the child. */
        close(passed->fd);
    }
    else if (epoll_ctl(park.epfd, EPOLL_CTL_ADD, passed->fd, &ev) == 0) {
        list_add(&park.parked, e);
        e = NULL;
    }
    else {
        rv = 0;
    }
    pthread_mutex_unlock(&park.lock);
    free(e);
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
        list_del(&park.parked, e);
        close_parked(e);
    }
    while ((e = park.ready.head) != NULL) {
        list_del(&park.ready, e);
        close_parked(e);
    }
    pthread_mutex_unlock(&park.lock);
}
