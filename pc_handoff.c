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

/* pc_handoff.c: moving a connection to the pool that owns its vhost.
 *
 * Sending.  A recording input filter, just above the core's, keeps a
 * copy of every byte of the current request head as httpd reads it.
 * At post_read_request (first among the hooks) a child compares the
 * pool of the request's vhost with its own.  For another pool's vhost
 * it sends, over that pool's channel, the client descriptor with the
 * head exactly as received plus whatever the core has read ahead
 * (body, pipelined requests), then forgets the connection: c->aborted
 * keeps httpd from writing to it or shutting it down, our
 * log_transaction hook keeps it out of the access log, and closing our
 * descriptor leaves the client's connection to the receiver.
 *
 * Receiving.  One idle worker, woken by the record, takes it off its
 * pool's channel into its socket table entry (-2), then builds a
 * connection on the passed descriptor, and our
 * insert_network_bucket hook puts the forwarded bytes in front of the
 * socket, so httpd parses the request as if it had read it itself.
 *
 * When the owner cannot take the connection in bounded time, the
 * client gets 503 with Retry-After: never another pool's uid.
 */

#include "perchild.h"
#include "pc_handoff.h"
#include "pc_channel.h"
#include "pc_affinity.h"
#include "pc_hint.h"
#include "pc_sni.h"
#include "pc_h2c.h"
#include "http_log.h"
#include "http_main.h"
#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "http_connection.h"
#include "http_ssl.h"
#include "util_filter.h"
#include "apr_strings.h"
#include "apr_atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

APLOG_USE_MODULE(mpm_perchild);

/* How long a sender waits for room in the owner's channel. */
#define PC_SEND_TIMEOUT_MS 1000
/* A connection passed this often is looping between pools. */
#define PC_MAX_HOPS 8

static const char *const RECORD_FILTER = "PERCHILD_RECORD";
static ap_filter_rec_t *record_filter_handle;

/* Channels made by the parent, -1 where closed: pool p has chan_ways[p]
 * of them from chan_base[p] on, of which senders use the first
 * chan_live[p] (one unless PerchildCPUAffinity splits it per CPU); the
 * rest are ways a graceful restart retired, still read for the old
 * generation's senders.  num_chans counts pools. */
static int *chan_recv;
static int *chan_send;
static int *chan_base;
static int *chan_ways;
static int *chan_live;
static apr_time_t *chan_checked;     /* this process's last look at the
                                     * channel's queue that found room */
static int num_chans;
static int my_way;           /* child: which of its pool's channels */

/* The hand-off's own preamble, first in every record's payload (the
 * channel below knows nothing of HTTP).  Untrusted like the rest: it
 * only tunes keep-alive. */
typedef struct pc_preamble_t {
    uint32_t keepalives;     /* requests served on the connection so far */
    uint32_t flags;
} pc_preamble_t;

/* Given back between two requests: wait for the next one as keep-alive. */
#define PC_PRE_BETWEEN 0x1u
/* The connection's way (see send_way), bits 8-15: only ever a hint. */
#define PC_PRE_WAY_SHIFT 8
#define PC_PRE_WAY_MASK  0xff00u
/* The sender timed out reading the head it passes: the owner, after
 * those bytes, times out too (408, or only the log line httpd writes for
 * a request line that never came), with its ErrorDocument and logs. */
#define PC_PRE_TIMED_OUT 0x2u
/* Given back: the KeepAliveTimeout httpd set after the request just
 * served (its vhost's), in 10 ms units plus one, bits 16-31; 0: not
 * said. */
#define PC_PRE_KA_SHIFT 16
#define PC_PRE_KA_MASK  0xffff0000u
#define PC_PRE_KA_UNIT  apr_time_from_msec(10)
#define PC_PRE_KNOWN   (PC_PRE_BETWEEN | PC_PRE_TIMED_OUT | PC_PRE_WAY_MASK \
                        | PC_PRE_KA_MASK)

/* Per-connection state. */
typedef struct pc_conn_t {
    char *head;              /* bytes of the current request, as read */
    apr_size_t len, cap;
    int recording;
    int overflow;            /* head too large to forward */
    unsigned hops;           /* passes since a request was last served */
    int served;              /* requests served since this child got it */
    int gone;                /* passed on: reads see end of file */
    int between;             /* arrived between two requests */
    int timed_out;           /* the sender's read of it timed out */
    apr_interval_time_t ka_timeout;  /* given back: KeepAliveTimeout */
    int keepalives;          /* carried over from the sender */
    int from_dispatch;       /* came from the dispatch pool */
    int no_record;           /* on a listener of this pool only */
    int way;                 /* its listener bucket, carried along */
    int fresh;               /* this request's bytes came from the
                              * client, not from another pool */
    int hint_ok;             /* may look at the next head for a hint */
    int learn;               /* 'key' missed the hint cache: learn it */
    pc_hint_key_t key;       /* the current request's Host, if scanned */
    apr_bucket_brigade *peek;
    char *peek_buf;          /* PC_HINT_PEEK bytes */
    char *peek_tls;          /* PC_SNI_PEEK bytes, for a ClientHello */
    int early;               /* recording what is read before the first
                              * request (a PROXY header) */
    int proxy_broken;        /* a PROXY header too large to keep: the
                              * connection cannot move */
    int head_has_proxy;      /* the current recording starts with the
                              * connection's PROXY header (its first) */
    int tls;                 /* mod_ssl was on: the connection never
                              * moves, even after it fell back to plain
                              * HTTP (a plain request to a TLS port) */
    int proxy_checked;       /* first request looked at for PROXY */
    char *proxy;             /* the connection's PROXY header, if any */
    apr_size_t proxy_len;
    char *passed;            /* forwarded bytes to read before the socket */
    apr_size_t passed_len;
    ap_filter_t *filter;     /* our recording filter */
    /* A record ready to go, sent once httpd is done with the connection
     * (pc_handoff_finish): the owner's worker then wakes as this one is
     * about to sleep, instead of both running through httpd's wind-down
     * of a request that is no longer ours. */
    int out_pool;            /* -1: nothing pending */
    int out_way;             /* which of its channels (send_way) */
    int out_between;         /* given back between two requests */
    int out_head_only;       /* HEAD: a refusal has no body */
    int out_counted;         /* httpd counted the passed request here */
    const char *out_quiet;   /* "TLS" before a handshake, "HTTP/2" before
                              * a session: no HTTP/1 answer possible */
    int sni_done;            /* the ClientHello was looked at */
    int h2c_done;            /* the first bytes were looked at for a
                              * cleartext HTTP/2 start */
    apr_size_t h2c_settings_at;  /* a dispatch child sent the server's
                              * SETTINGS when the client had sent this
                              * much (0: not sent) */
    struct iovec out[4];
    pc_preamble_t pre;       /* out[0] */
    const char *out_vhost;   /* for the log, if the send fails */
} pc_conn_t;

static pc_conn_t *conn_state(conn_rec *c)
{
    return ap_get_module_config(c->conn_config, &mpm_perchild_module);
}

static int handoff_enabled(void)
{
    return num_chans > 1;
}

/* The parent's channels, one per pool identity.  They outlive a
 * configuration generation (retained data, not pconf): at a graceful
 * restart the old generation's children pass connections into the same
 * channels the new generation's children read, so nothing passed during
 * a restart is lost or refused.  The parent keeps both ends, so records
 * sent while a pool's children restart wait for the next child. */
typedef struct pc_chan_ent_t {
    uid_t uid;
    gid_t gid;
    int way;
    int recv, send;
    int in_use;              /* named by the current configuration */
} pc_chan_ent_t;

typedef struct pc_chan_table_t {
    apr_array_header_t *ents;    /* pc_chan_ent_t, in ap_pglobal */
} pc_chan_table_t;

static pc_chan_table_t *chan_table(void)
{
    /* Keyed by the entry's size, as the MPM's own retained data. */
    char key[48];
    pc_chan_table_t *t;

    apr_snprintf(key, sizeof(key), "mpm_perchild_channels/%lu",
                 (unsigned long)sizeof(pc_chan_ent_t));
    t = ap_retained_data_get(key);

    if (t == NULL) {
        t = ap_retained_data_create(key, sizeof(*t));
        t->ents = apr_array_make(ap_pglobal, 8, sizeof(pc_chan_ent_t));
    }
    return t;
}

/* Any holder of a channel's sending end (every other pool's children)
 * can shut it down; it then stays at end of file for good (PC0409 in
 * the pool's children).  Such a channel is not handed to another
 * generation. */
static int channel_shut_down(const pc_chan_ent_t *e)
{
    struct pollfd p;

    p.fd = e->recv;
    p.events = POLLRDHUP;
    p.revents = 0;
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP));
}

/* Channel 'way' of identity uid:gid, made if new (or if the old one was
 * shut down).  NULL on failure. */
static pc_chan_ent_t *channel_for(pc_chan_table_t *t, const pc_pool_t *pl,
                                  int way, int *err)
{
    pc_chan_ent_t *e;
    int i, sv[2];

    for (i = 0; i < t->ents->nelts; i++) {
        e = &APR_ARRAY_IDX(t->ents, i, pc_chan_ent_t);
        if (e->recv < 0 || e->uid != pl->uid || e->gid != pl->gid
            || e->way != way) {
            continue;
        }
        if (!channel_shut_down(e)) {
            return e;
        }
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                     "PC0315: the hand-off channel of pool %s was shut "
                     "down by a process holding its sending end; the new "
                     "generation gets a new one", pl->label);
        close(e->recv);
        close(e->send);
        e->recv = e->send = -1;
    }
    if ((*err = pc_chan_pair(sv, PC_CHAN_SNDBUF)) != 0) {
        return NULL;
    }
    e = apr_array_push(t->ents);
    e->uid = pl->uid;
    e->gid = pl->gid;
    e->way = way;
    e->recv = sv[0];
    e->send = sv[1];
    return e;
}

/* Channels of identities no pool uses any more: the old generation's
 * children still hold their copies until they exit. */
static void close_unused_channels(pc_chan_table_t *t)
{
    int i;

    for (i = 0; i < t->ents->nelts; i++) {
        pc_chan_ent_t *e = &APR_ARRAY_IDX(t->ents, i, pc_chan_ent_t);
        if (e->recv >= 0 && !e->in_use) {
            close(e->recv);
            close(e->send);
            e->recv = e->send = -1;
        }
    }
}

/* How many ways identity uid:gid had open in the last generation. */
static int ways_open(pc_chan_table_t *t, const pc_pool_t *pl)
{
    int i, n = 0;

    for (i = 0; i < t->ents->nelts; i++) {
        pc_chan_ent_t *e = &APR_ARRAY_IDX(t->ents, i, pc_chan_ent_t);
        if (e->recv >= 0 && e->uid == pl->uid && e->gid == pl->gid
            && e->way >= n) {
            n = e->way + 1;
        }
    }
    return n;
}

/* Parent, once per generation (open_logs): every pool's channels.  A
 * graceful restart that leaves a pool fewer ways (fewer children or
 * CPUs, PerchildCPUAffinity Off) keeps the retired ones: children of
 * the old generation still pass connections to them. */
int pc_handoff_open_channels(apr_pool_t *pconf, server_rec *s)
{
    pc_chan_table_t *t = chan_table();
    int i, w, total, n = pc_conf->pools->nelts;

    num_chans = 0;
    for (i = 0; i < t->ents->nelts; i++) {
        APR_ARRAY_IDX(t->ents, i, pc_chan_ent_t).in_use = 0;
    }
    if (n < 2) {
        close_unused_channels(t);
        return OK;
    }
    chan_base = apr_palloc(pconf, n * sizeof(int));
    chan_ways = apr_palloc(pconf, n * sizeof(int));
    chan_live = apr_palloc(pconf, n * sizeof(int));
    for (i = 0, total = 0; i < n; i++) {
        int kept = pc_retained->mpm->was_graceful
                   ? ways_open(t, pc_pools_get(i)) : 0;

        chan_base[i] = total;
        chan_live[i] = pc_affinity_ways(pc_pools_get(i));
        chan_ways[i] = kept > chan_live[i] ? kept : chan_live[i];
        total += chan_ways[i];
    }
    chan_recv = apr_palloc(pconf, total * sizeof(int));
    chan_send = apr_palloc(pconf, total * sizeof(int));
    chan_checked = apr_pcalloc(pconf, total * sizeof(apr_time_t));
    for (i = 0; i < n; i++) {
        for (w = 0; w < chan_ways[i]; w++) {
            int rv = 0;
            pc_chan_ent_t *e = channel_for(t, pc_pools_get(i), w, &rv);

            if (e == NULL) {
                ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                             "PC0310: cannot create the hand-off channel "
                             "of pool %s", pc_pools_get(i)->label);
                return !OK;
            }
            e->in_use = 1;
            chan_recv[chan_base[i] + w] = e->recv;
            chan_send[chan_base[i] + w] = e->send;
        }
    }
    num_chans = n;
    close_unused_channels(t);
    return OK;
}

/* The longest KeepAliveTimeout of any vhost (pc_handoff_child_init): a
 * record (any tenant can write one) asks for no longer wait than the
 * configuration allows. */
static apr_interval_time_t longest_keepalive;

static void find_longest_keepalive(void)
{
    server_rec *s;

    longest_keepalive = 0;
    for (s = ap_server_conf; s != NULL; s = s->next) {
        if (s->keep_alive_timeout > longest_keepalive) {
            longest_keepalive = s->keep_alive_timeout;
        }
    }
}

/* The wait a give-back record asks for, or -1 if it says none. */
static apr_interval_time_t keepalive_said(apr_uint32_t flags)
{
    apr_uint32_t units = (flags & PC_PRE_KA_MASK) >> PC_PRE_KA_SHIFT;
    apr_interval_time_t t;

    if (units == 0) {
        return -1;
    }
    t = (apr_interval_time_t)(units - 1) * PC_PRE_KA_UNIT;
    return t < longest_keepalive ? t : longest_keepalive;
}

/* Does a child of 'pool' need to send to pool 'to'?  Only if one
 * listener reaches both (or did in the generation before, see
 * pc_pools_may_pass); a tenant next to a dispatch pool only ever gives
 * connections back to it.  Its own pool's: once told to stop, a child
 * leaves what it can no longer place to its successors (see
 * to_successors). */
static int needs_send_end(int pool, int to, int was_shared)
{
    int d = pc_conf->dispatch_pool;

    if (to == pool) {
        return 1;
    }
    if (d >= 0) {
        return pool == d || to == d;
    }
    return pc_pools_may_pass(pool, to, was_shared);
}

/* PC0301 at error level at most once a second per owner pool and
 * process; the rest at debug, counted in the next error line.  A pool
 * held off or stopped under load would otherwise write a line per
 * request. */
static apr_uint32_t *refusal_msec;      /* per pool: last error line */
static apr_uint32_t *refusal_quiet;     /* per pool: refusals since */

/* A child keeps its own way's receiving ends (its way's and those of
 * retired ways that map onto it) and the sending ends it may use: it can
 * read no other pool's channel. */
void pc_handoff_child_init(int pool, int way)
{
    int i, w, was_shared = pc_pools_was_shared(pool);

    my_way = way;
    find_longest_keepalive();
    refusal_msec = apr_pcalloc(pc_pconf, pc_conf->pools->nelts
                                           * sizeof(apr_uint32_t));
    refusal_quiet = apr_pcalloc(pc_pconf, pc_conf->pools->nelts
                                          * sizeof(apr_uint32_t));
    for (i = 0; i < num_chans; i++) {
        for (w = 0; w < chan_ways[i]; w++) {
            int c = chan_base[i] + w;

            if ((i != pool || w % chan_live[i] != way)
                && chan_recv[c] >= 0) {
                close(chan_recv[c]);
                chan_recv[c] = -1;
            }
            if (!needs_send_end(pool, i, was_shared) && chan_send[c] >= 0) {
                close(chan_send[c]);
                chan_send[c] = -1;
            }
        }
    }
}

/* Which of pool's channels a connection goes to.  A pinned child (its
 * own pool has ways) passes to the owner's channel of the CPU it runs on:
 * the owner's worker then wakes on that CPU.  An unpinned child would
 * send everything to whatever CPU it happens to run on, and the first
 * child of the wake order accepts most new connections: it follows the
 * bucket the connection came in on instead, which the kernel's hash
 * spreads evenly. */
static int send_way(int pool, const pc_conn_t *pcc)
{
    int ways = chan_live[pool];

    if (ways < 2) {
        return 0;
    }
    if ((pc_my_pool < 0 || chan_live[pc_my_pool] < 2)
        && pc_conf->num_buckets > 1) {
        return pcc->way % ways;
    }
    return pc_affinity_sender_way(ways);
}

/* The sending end of way 'way' of 'pool', or -1. */
static int send_end(int pool, int way)
{
    return chan_send[chan_base[pool] + way];
}

apr_size_t pc_handoff_bufsize(void)
{
    return PC_CHAN_MAX_PAYLOAD;
}

int pc_handoff_channel_fds(int pool, int *fds)
{
    int w, n = 0;

    if (pool < 0 || pool >= num_chans) {
        return 0;
    }
    for (w = 0; w < chan_ways[pool]; w++) {
        int fd = chan_recv[chan_base[pool] + w];

        if (fd >= 0 && w % chan_live[pool] == my_way) {
            if (fds != NULL) {
                fds[n] = fd;
            }
            n++;
        }
    }
    return n;
}

/* A passed descriptor must be a TCP stream socket; a tenant could send
 * anything down the channel.  Keeps its local address (the family tells
 * IPv4 from IPv6); pc_handoff_wrap() checks it is connected. */
static int passed_fd_ok(int fd, struct sockaddr_storage *local)
{
    socklen_t len = sizeof(*local);
    int proto = 0;
    socklen_t plen = sizeof(proto);

    /* ENOTSOCK for anything that is not a socket; TCP itself, not a
     * stream protocol that only looks like it (SCTP, MPTCP). */
    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &plen) == -1
        || proto != IPPROTO_TCP) {
        return 0;
    }
    if (getsockname(fd, (struct sockaddr *)local, &len) == -1) {
        return 0;
    }
    return local->ss_family == AF_INET || local->ss_family == AF_INET6;
}

static void log_not_tcp(void)
{
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                 "PC0312: refused a hand-off record whose descriptor "
                 "is not a connected TCP socket");
}

/* A TCP socket that has no peer, is bound to a port and is not
 * listening: a connection the client reset (or closed) while it was in
 * the channel (one never connected has no port).  The kernel has
 * forgotten its address, and no address a record could carry can be
 * trusted: its request cannot be served under a known client address,
 * and the client is not there to read an answer. */
static int reset_in_transit(const pc_passed_t *passed, apr_status_t rv)
{
    const struct sockaddr_storage *ss = &passed->local;
    int listening = 1, port;
    socklen_t len = sizeof(listening);

    port = ss->ss_family == AF_INET
           ? ((const struct sockaddr_in *)ss)->sin_port
           : ((const struct sockaddr_in6 *)ss)->sin6_port;
    return rv == ENOTCONN && port != 0
           && getsockopt(passed->fd, SOL_SOCKET, SO_ACCEPTCONN, &listening,
                         &len) == 0
           && !listening;
}

static void log_reset_in_transit(const pc_passed_t *passed)
{
    if ((passed->pre_flags & PC_PRE_BETWEEN) && passed->len == 0) {
        /* Given back between two requests: no request is lost. */
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, ap_server_conf,
                     "PC0324: a connection given back between two "
                     "requests was closed by its client");
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                 "PC0319: a passed connection's client closed it before "
                 "this child took it over; its request (%lu bytes read) "
                 "is dropped", (unsigned long)passed->len);
}

apr_status_t pc_handoff_wrap(apr_socket_t **sock, pc_passed_t *passed,
                             apr_pool_t *p)
{
    apr_os_sock_info_t info;
    apr_sockaddr_t *peer;
    apr_status_t rv;

    memset(&info, 0, sizeof(info));
    info.os_sock = &passed->fd;
    info.local = (struct sockaddr *)&passed->local;
    info.family = passed->local.ss_family;
    info.type = SOCK_STREAM;
    /* No remote: APR looks the peer up even when given one.  Its one
     * getpeername() doubles as the check that the socket is connected;
     * the pool's cleanup closes the descriptor from here on. */
    if ((rv = apr_os_sock_make(sock, &info, p)) != APR_SUCCESS) {
        close(passed->fd);
        return rv;
    }
    rv = apr_socket_addr_get(&peer, APR_REMOTE, *sock);
    /* (APR fills in the address but not its 'family' field.) */
    if (rv == APR_SUCCESS && peer->sa.sin.sin_family != info.family) {
        rv = APR_EINVAL;
    }
    if (rv != APR_SUCCESS) {
        if (reset_in_transit(passed, rv)) {
            log_reset_in_transit(passed);
        }
        else {
            log_not_tcp();
        }
        apr_socket_close(*sock);
    }
    return rv;
}

apr_status_t pc_handoff_receive(int chan, char *buf, pc_passed_t *out)
{
    size_t len;
    unsigned hops;
    int fd, rv;

    rv = pc_chan_recv(chan, &fd, &hops, buf, PC_CHAN_MAX_PAYLOAD, &len);
    if (rv == EAGAIN) {
        return APR_EAGAIN;
    }
    if (rv == EPIPE) {
        return rv;                  /* shut down: the caller says so */
    }
    if (rv == EMFILE) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, ap_server_conf,
                     "PC0320: a passed connection was lost: this child "
                     "had no descriptor free to take it (raise the open "
                     "files limit, ulimit -n / LimitNOFILE)");
        return rv;
    }
    if (rv != 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, ap_server_conf,
                     "PC0311: refused a malformed hand-off record");
        return rv;
    }
    if (!passed_fd_ok(fd, &out->local)) {
        log_not_tcp();
        close(fd);
        return APR_EGENERAL;
    }
    if (len < sizeof(pc_preamble_t)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                     "PC0313: refused a hand-off record without preamble");
        close(fd);
        return APR_EGENERAL;
    }
    memcpy(&out->pre_keepalives, buf, sizeof(uint32_t));
    memcpy(&out->pre_flags, buf + sizeof(uint32_t), sizeof(uint32_t));
    if (out->pre_flags & ~PC_PRE_KNOWN) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                     "PC0314: refused a hand-off record with unknown "
                     "flags %#x", (unsigned)out->pre_flags);
        close(fd);
        return APR_EGENERAL;
    }
    out->keepalive_timeout = keepalive_said(out->pre_flags);
    out->fd = fd;
    out->hops = hops;
    /* With a dispatch pool, tenants send nothing to each other: whatever
     * a tenant's child receives is the dispatcher's to get back.  (A
     * record cannot prove its sender, so no flag in it is trusted.) */
    out->from_dispatch = pc_conf->dispatch_pool >= 0;
    out->bytes = buf + sizeof(pc_preamble_t);
    out->len = len - sizeof(pc_preamble_t);
    return APR_SUCCESS;
}

static pc_conn_t *make_conn_state(conn_rec *c)
{
    pc_conn_t *pcc = apr_pcalloc(c->pool, sizeof(*pcc));

    pcc->out_pool = -1;
    ap_set_module_config(c->conn_config, &mpm_perchild_module, pcc);
    return pcc;
}

void pc_handoff_own_listener(conn_rec *c)
{
    make_conn_state(c)->no_record = 1;
}

void pc_handoff_accepted(conn_rec *c, int bucket)
{
    make_conn_state(c)->way = bucket;
}

void pc_handoff_adopt(conn_rec *c, pc_passed_t *passed)
{
    pc_conn_t *pcc = make_conn_state(c);

    pcc->hops = passed->hops;
    pcc->from_dispatch = passed->from_dispatch;
    pcc->passed = passed->bytes;
    pcc->passed_len = passed->len;
    pcc->between = (passed->pre_flags & PC_PRE_BETWEEN) != 0;
    pcc->timed_out = (passed->pre_flags & PC_PRE_TIMED_OUT) != 0;
    pcc->ka_timeout = passed->keepalive_timeout;
    pcc->way = (int)((passed->pre_flags & PC_PRE_WAY_MASK)
                     >> PC_PRE_WAY_SHIFT);
    /* MaxKeepAliveRequests counts over the connection's whole life. */
    c->keepalives = (int)(passed->pre_keepalives > 0x7fffffffu
                          ? 0x7fffffff : passed->pre_keepalives);
}

/* Stands in for the socket of a connection whose sender timed out: it
 * reads as a socket whose wait has run out, which the sender's did.  Its
 * read ends only in a timeout, so nothing sets it aside, splits or
 * copies it.  Non-blocking reads time out too: mod_reqtimeout reads that
 * way and, told "not yet", would wait on the real socket (or spin, once
 * the client sends a byte the stand-in never gives). */
static apr_status_t timed_out_read(apr_bucket *b, const char **str,
                                   apr_size_t *len, apr_read_type_e block)
{
    *str = NULL;
    *len = 0;
    return APR_TIMEUP;
}

static const apr_bucket_type_t timed_out_type = {
    "PERCHILD_TIMED_OUT", 5, APR_BUCKET_DATA,
    apr_bucket_destroy_noop,
    timed_out_read,
    apr_bucket_setaside_notimpl,
    apr_bucket_split_notimpl,
    apr_bucket_copy_notimpl
};

static apr_bucket *timed_out_create(apr_bucket_alloc_t *list)
{
    apr_bucket *b = apr_bucket_alloc(sizeof(*b), list);

    APR_BUCKET_INIT(b);
    b->free = apr_bucket_free;
    b->list = list;
    b->type = &timed_out_type;
    b->length = (apr_size_t)-1;
    b->start = -1;
    b->data = NULL;
    return b;
}

/* The core calls this when it first reads a connection: forwarded
 * bytes go in front of the socket. */
static apr_status_t insert_network_bucket(conn_rec *c,
                                          apr_bucket_brigade *bb,
                                          apr_socket_t *socket)
{
    pc_conn_t *pcc = conn_state(c);
    apr_bucket *e;

    if (pcc == NULL || (pcc->passed_len == 0 && !pcc->timed_out)) {
        return AP_DECLINED;
    }
    if (pcc->passed_len > 0) {
        e = apr_bucket_immortal_create(pcc->passed, pcc->passed_len,
                                       c->bucket_alloc);
        APR_BRIGADE_INSERT_TAIL(bb, e);
    }
    e = pcc->timed_out ? timed_out_create(c->bucket_alloc)
                       : apr_bucket_socket_create(socket, c->bucket_alloc);
    APR_BRIGADE_INSERT_TAIL(bb, e);
    pcc->passed_len = 0;
    return APR_SUCCESS;
}

/* What is kept of the bytes read before the first request starts
 * (mod_remoteip reads a PROXY header there when another module, such as
 * mod_http2's direct mode, looks at the connection first).  A PROXY
 * header is at most 107 bytes (v1), or 16 plus its TLVs (v2). */
#define PC_EARLY_MAX 2048

static void record(pc_conn_t *pcc, apr_pool_t *p, const char *data,
                   apr_size_t len)
{
    if (pcc->early && pcc->len + len > PC_EARLY_MAX) {
        len = PC_EARLY_MAX - pcc->len;
        pcc->recording = 0;
    }
    if (pcc->len + len > PC_CHAN_MAX_PAYLOAD) {
        pcc->overflow = 1;
        pcc->recording = 0;
        return;
    }
    if (pcc->len + len > pcc->cap) {
        apr_size_t cap = pcc->cap ? pcc->cap * 2 : 1024;
        char *head;

        while (cap < pcc->len + len) {
            cap *= 2;
        }
        head = apr_palloc(p, cap);
        memcpy(head, pcc->head, pcc->len);
        pcc->head = head;
        pcc->cap = cap;
    }
    memcpy(pcc->head + pcc->len, data, len);
    pcc->len += len;
}

static int pass_by_hint(ap_filter_t *f, pc_conn_t *pcc,
                        apr_read_type_e block, apr_status_t *rv);
static int pass_by_sni(ap_filter_t *f, pc_conn_t *pcc,
                       apr_read_type_e block, apr_status_t *rv);
static int pass_by_h2c(ap_filter_t *f, pc_conn_t *pcc,
                       apr_read_type_e block, apr_status_t *rv);

/* Keeps a copy of what the layers above consume while a request head
 * is being read.  Speculative reads consume nothing. */
static apr_status_t record_filter(ap_filter_t *f, apr_bucket_brigade *bb,
                                  ap_input_mode_t mode,
                                  apr_read_type_e block, apr_off_t readbytes)
{
    pc_conn_t *pcc = f->ctx;
    apr_status_t rv;
    apr_bucket *e;

    if (pcc->gone) {
        /* The connection went (back) to another pool between two
         * requests: its next request is not ours to read. */
        return APR_EOF;
    }
    if (pcc->early && !pcc->tls && ap_ssl_conn_is_ssl(f->c)) {
        /* mod_ssl's handshake, run before the first request (its
         * process_connection hook): remembered, as mod_ssl forgets its
         * session when the client turns out to speak plain HTTP.  Before
         * the handshake begins, the connection may still go to the pool
         * of the vhost its ClientHello names. */
        pcc->tls = 1;
    }
    if (pcc->early && pcc->tls && !pcc->sni_done) {
        if (pass_by_sni(f, pcc, block, &rv)) {
            return APR_ECONNABORTED;
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    if (pcc->early && !pcc->tls && !pcc->h2c_done) {
        if (pass_by_h2c(f, pcc, block, &rv)) {
            return APR_EOF;
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    if (mode == AP_MODE_GETLINE && pcc->hint_ok && pcc->len == 0) {
        if (pass_by_hint(f, pcc, block, &rv)) {
            /* httpd sees end of file before the request line and lets the
             * connection go quietly, as after a client's keep-alive
             * close. */
            return APR_EOF;
        }
        if (rv != APR_SUCCESS) {
            return rv;            /* the wait timed out, or a reset */
        }
    }
    rv = ap_get_brigade(f->next, bb, mode, block, readbytes);

    if (rv != APR_SUCCESS || !pcc->recording
        || mode == AP_MODE_SPECULATIVE) {
        return rv;
    }
    for (e = APR_BRIGADE_FIRST(bb);
         e != APR_BRIGADE_SENTINEL(bb) && pcc->recording;
         e = APR_BUCKET_NEXT(e)) {
        const char *data;
        apr_size_t len;

        if (APR_BUCKET_IS_METADATA(e)) {
            continue;
        }
        if (apr_bucket_read(e, &data, &len, APR_BLOCK_READ) != APR_SUCCESS) {
            pcc->overflow = 1;
            pcc->recording = 0;
            break;
        }
        record(pcc, f->c->pool, data, len);
    }
    return rv;
}

static int pre_connection(conn_rec *c, void *csd)
{
    pc_conn_t *pcc;

    /* HTTP/2 streams and mod_proxy's backend connections read no
     * request of a client. */
    if (!handoff_enabled() || c->master != NULL || c->outgoing) {
        return DECLINED;
    }
    pcc = conn_state(c);
    if (pcc == NULL) {
        pcc = make_conn_state(c);
    }
    else if (pcc->no_record) {
        return DECLINED;
    }
    pcc->filter = ap_add_input_filter_handle(record_filter_handle, pcc, NULL,
                                             c);
    pcc->recording = 1;
    pcc->early = 1;
    return DECLINED;
}

static apr_status_t prepare_record(conn_rec *c, pc_conn_t *pcc, int pool,
                                   apr_uint32_t flags);
static void forget(conn_rec *c);
static void note_proxy_header(conn_rec *c, pc_conn_t *pcc);

/* With a dispatch pool, a tenant's child serves one request per hand-off
 * and gives the connection back before reading the next one: no tenant
 * reads another tenant's request. */
static int must_give_back(const pc_conn_t *pcc)
{
    /* A TLS session stays where its handshake was made. */
    return !pcc->tls && pc_conf->dispatch_pool >= 0 && pc_my_pool >= 0
           && pc_my_pool != pc_conf->dispatch_pool
           && pcc->served > 0 && pcc->from_dispatch;
}

/* The KeepAliveTimeout for the wait that follows, as flag bits: httpd
 * has just set the socket's timeout to the one of the vhost of the
 * request it served (worker waits with that, not the address's first
 * vhost's). */
static apr_uint32_t keepalive_bits(conn_rec *c)
{
    apr_interval_time_t t = 0;
    apr_int64_t units;

    if (apr_socket_timeout_get(ap_get_conn_socket(c), &t) != APR_SUCCESS
        || t < 0) {
        return 0;
    }
    units = (t + PC_PRE_KA_UNIT - 1) / PC_PRE_KA_UNIT + 1;
    units = units > 0xffff ? 0xffff : units;
    return (apr_uint32_t)units << PC_PRE_KA_SHIFT;
}

static void give_back(request_rec *r, conn_rec *c, pc_conn_t *pcc)
{
    apr_status_t rv;

    pcc->len = 0;
    pcc->out_way = send_way(pc_conf->dispatch_pool, pcc);
    rv = prepare_record(c, pcc, pc_conf->dispatch_pool,
                        PC_PRE_BETWEEN | keepalive_bits(c));
    if (rv != APR_SUCCESS) {
        ap_log_cerror(APLOG_MARK, APLOG_INFO, rv, c,
                      "PC0323: cannot prepare the record that gives the "
                      "connection back to the dispatch pool; closing it");
        pcc->gone = 1;
        c->keepalive = AP_CONN_CLOSE;
        return;
    }
    pcc->gone = 1;
    forget(c);
}

static void pre_read_request(request_rec *r, conn_rec *c)
{
    pc_conn_t *pcc = conn_state(c);
    int was_between;

    if (pcc == NULL || pcc->filter == NULL) {
        return;
    }
    if (ap_ssl_conn_is_ssl(c)) {
        pcc->tls = 1;             /* (see record_filter) */
    }
    pcc->head_has_proxy = 0;
    if (pcc->early) {
        /* Whatever was read before this first request can only be a
         * PROXY header (or a TLS handshake): keep it for the
         * connection's passes.  The recording below starts afresh. */
        if (pcc->len > 0) {
            note_proxy_header(c, pcc);
        }
        pcc->early = 0;
    }
    if (must_give_back(pcc)) {
        give_back(r, c, pcc);
        return;
    }
    was_between = pcc->between;
    if (pcc->between) {
        /* The client is between two requests: wait as the sending child
         * would have, with the keep-alive timeout (httpd sets Timeout
         * back once the request line is read). */
        pcc->between = 0;
        apr_socket_timeout_set(ap_get_conn_socket(c),
                               pcc->ka_timeout >= 0 ? pcc->ka_timeout
                               : c->base_server->keep_alive_timeout);
    }
    /* Not the first request of a connection just passed here: another
     * child chose us for it, maybe by a hint, and httpd decides now. */
    pcc->fresh = pcc->hops == 0 || was_between;
    pcc->hint_ok = pc_my_pool >= 0 && pcc->fresh;
    pcc->learn = 0;
    pcc->len = 0;
    pcc->overflow = 0;
    pcc->recording = 1;
}

static const char refusal_body[] =
    "503 Service Unavailable: this site's server is not available.\n";

static void log_refusal(conn_rec *c, apr_status_t rv, const char *vhost,
                        const pc_pool_t *want, const char *why)
{
    /* Milliseconds, wrapping every 49 days: only differences count. */
    apr_uint32_t now = (apr_uint32_t)apr_time_as_msec(apr_time_now());
    apr_uint32_t then, more = 0;
    int level = APLOG_ERR;

    if (refusal_msec != NULL && want != NULL) {
        then = apr_atomic_read32(&refusal_msec[want->index]);
        if (now - then < 1000
            || apr_atomic_cas32(&refusal_msec[want->index], now, then)
               != then) {
            apr_atomic_inc32(&refusal_quiet[want->index]);
            level = APLOG_DEBUG;
        }
        else {
            more = apr_atomic_xchg32(&refusal_quiet[want->index], 0);
        }
    }
    ap_log_cerror(APLOG_MARK, level, rv, c,
                  "PC0301: request for vhost %s (pool %s) reached a child "
                  "of pool %s and %s; refusing with 503%s",
                  vhost ? vhost : "?", pc_pools_label(want),
                  pc_pools_label(pc_pools_get(pc_my_pool)), why,
                  more ? apr_psprintf(c->pool, " (and %u more for that "
                                      "pool since the last such line)",
                                      (unsigned)more) : "");
}

/* Answers 503 ourselves rather than through ap_die: a vhost's
 * ErrorDocument would run an internal redirect here, in the wrong
 * user's process. */
static int refuse(request_rec *r, const pc_pool_t *want, const char *why)
{
    log_refusal(r->connection, 0, r->server->server_hostname, want, why);
    r->connection->keepalive = AP_CONN_CLOSE;
    r->status = HTTP_SERVICE_UNAVAILABLE;
    apr_table_setn(r->err_headers_out, "Retry-After", "5");
    ap_set_content_type(r, "text/plain; charset=ISO-8859-1");
    ap_rputs(refusal_body, r);
    return DONE;
}

/* Bytes of records a pool may have waiting per worker thread before a
 * sender calls it overloaded: about two small records each. */
#define PC_QUEUE_BYTES_PER_THREAD 4096
/* How long a look that found room in a channel holds: a queue cannot
 * grow to its limit (over a thousand records) in that time, and the
 * look is a system call per hand-off otherwise. */
#define PC_QUEUE_CHECK_INTERVAL apr_time_from_msec(2)

/* Does the channel's queue leave room?  SIOCOUTQ on the shared sending
 * end: all senders' unread records (of this CPU's channel, with
 * PerchildCPUAffinity).  Threads race on 'checked' harmlessly: at worst
 * two of them look. */
static int queue_has_room(int pool, int way)
{
    pc_pool_t *pl = pc_pools_get(pool);
    apr_time_t now = apr_time_now();
    apr_time_t *checked = &chan_checked[chan_base[pool] + way];
    long limit = (long)pl->slots * pc_conf->threads_per_child
                 * PC_QUEUE_BYTES_PER_THREAD
                 / (chan_live[pool] > 0 ? chan_live[pool] : 1);
    int queued = 0;

    if (now - *checked < PC_QUEUE_CHECK_INTERVAL && now >= *checked) {
        return 1;
    }
    if (ioctl(send_end(pool, way), SIOCOUTQ, &queued) == 0
        && queued > (limit > 65536 ? limit : 65536)) {
        return 0;
    }
    *checked = now;
    return 1;
}

/* Can 'pool' take a connection now?  Not when the parent keeps it down
 * (it cannot start, or crashes in a loop), nor when its channel already
 * holds more records than its threads can soon take: then the pool is
 * stuck or overloaded, and 503 now beats a client waiting in a queue.
 * A pool merely (re)starting is fine: records wait for its child. */
static int pool_can_take(int pool, int way)
{
    pc_pool_t *pl = pc_pools_get(pool);

    /* -X (ONE_PROCESS) runs pool 0 alone: nobody reads the others. */
    if (pc_one_process || pl->slots == 0 || pc_parent_pool_down(pool)) {
        return 0;
    }
    return queue_has_room(pool, way);
}

/* The core input filter's read-ahead brigade, or NULL. */
static apr_bucket_brigade *core_read_ahead(conn_rec *c)
{
    ap_filter_t *f;

    for (f = c->input_filters; f != NULL; f = f->next) {
        if (f->frec == ap_core_input_filter_handle) {
            core_net_rec *net = f->ctx;
            return (net && net->in_ctx) ? net->in_ctx->b : NULL;
        }
    }
    return NULL;
}

/* Copies what the core has read from the client but not yet handed up
 * (the rest of a body, pipelined requests) without reading the socket:
 * bytes still in the kernel travel with the descriptor.  A read here
 * could take more than fits in a record and strand the excess in this
 * process, so none is made. */
static apr_status_t read_ahead(conn_rec *c, apr_size_t room, char **out,
                               apr_size_t *outlen, apr_pool_t *p)
{
    apr_bucket_brigade *bb = core_read_ahead(c);
    apr_bucket *e;
    apr_size_t total = 0;
    char *buf;

    *out = NULL;
    *outlen = 0;
    if (bb == NULL) {
        return APR_SUCCESS;
    }
    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb);
         e = APR_BUCKET_NEXT(e)) {
        if (APR_BUCKET_IS_SOCKET(e) || APR_BUCKET_IS_METADATA(e)) {
            break;
        }
        if (e->length == (apr_size_t)-1) {
            return APR_EGENERAL;
        }
        total += e->length;
    }
    if (total > room) {
        return APR_ENOSPC;
    }
    if (total == 0) {
        return APR_SUCCESS;
    }
    buf = apr_palloc(p, total);
    for (e = APR_BRIGADE_FIRST(bb); *outlen < total; e = APR_BUCKET_NEXT(e)) {
        const char *data;
        apr_size_t len;
        apr_status_t rv = apr_bucket_read(e, &data, &len, APR_BLOCK_READ);

        if (rv != APR_SUCCESS) {
            return rv;
        }
        memcpy(buf + *outlen, data, len);
        *outlen += len;
    }
    *out = buf;
    return APR_SUCCESS;
}

/* Are all the processes this thread started gone (exited, maybe not
 * yet reaped)?  Yes also when the kernel cannot say. */
static int children_gone(void)
{
    char buf[256], path[64], stat[256], *p, *end;
    ssize_t n;
    int fd;

    if ((fd = open("/proc/thread-self/children", O_RDONLY | O_CLOEXEC))
        == -1) {
        return 1;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 1;
    }
    buf[n] = '\0';
    for (p = buf; *p != '\0'; p = end) {
        long pid = strtol(p, &end, 10);
        char *state;
        if (end == p) {
            break;
        }
        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
            continue;
        }
        n = read(fd, stat, sizeof(stat) - 1);
        close(fd);
        stat[n > 0 ? n : 0] = '\0';
        state = strrchr(stat, ')');
        if (state != NULL && state[1] == ' ' && state[2] != 'Z'
            && state[2] != 'X') {
            return 0;
        }
    }
    return 1;
}

/* A CGI script this thread ran for a held-back response has ended its
 * output but may still be exiting.  Ending that request now (the flush
 * below) would find it alive, and APR then sends it SIGTERM and sleeps
 * 47 ms before anything else happens: the connection would wait that
 * long to move.  So wait for it to exit first, 20 ms at most. */
static void let_programs_exit(void)
{
    int i;

    for (i = 0; i < 100 && !children_gone(); i++) {
        apr_sleep(200);
    }
}

/* Writes out what earlier requests on this connection left buffered
 * (httpd holds back responses to pipelined requests): the receiver's
 * bytes must follow ours on the wire. */
static apr_status_t flush_earlier_responses(conn_rec *c)
{
    apr_bucket_brigade *bb;

    /* The core output filter says when it holds bytes back (the only
     * connection filter that does, on a connection that can move). */
    if (!c->data_in_output_filters) {
        return APR_SUCCESS;
    }
    let_programs_exit();
    bb = apr_brigade_create(c->pool, c->bucket_alloc);

    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_flush_create(c->bucket_alloc));
    return ap_pass_brigade(c->output_filters, bb);
}

static const char proxy_v2sig[12] = "\r\n\r\n\0\r\nQUIT\n";

/* Length of the PROXY protocol header (v1 or v2) at the start of 'b', or
 * 0 when there is none, or it is incomplete. */
static apr_size_t proxy_len(const char *b, apr_size_t n)
{
    apr_size_t i;

    if (n >= 16 && memcmp(b, proxy_v2sig, sizeof(proxy_v2sig)) == 0) {
        apr_size_t len = 16 + (((unsigned char)b[14] << 8)
                               | (unsigned char)b[15]);
        return len <= n ? len : 0;
    }
    if (n >= 8 && memcmp(b, "PROXY ", 6) == 0) {
        /* A v1 line is at most 107 bytes with its CRLF. */
        for (i = 6; i + 1 < n && i < 107; i++) {
            if (b[i] == '\r' && b[i + 1] == '\n') {
                return i + 2;
            }
        }
    }
    return 0;
}

/* Does mod_remoteip expect a PROXY header on 'c'?  Its filter is there
 * only where RemoteIPProxyProtocol is on for the connection. */
static int proxy_protocol_on(conn_rec *c)
{
    ap_filter_t *f;

    for (f = c->input_filters; f != NULL; f = f->next) {
        if (f->frec != NULL && f->frec->name != NULL
            && strcasecmp(f->frec->name, "REMOTEIP_INPUT") == 0) {
            return 1;
        }
    }
    return 0;
}

/* mod_remoteip's RemoteIPProxyProtocol reads a PROXY header once, at
 * the start of a connection, and the receiving child's mod_remoteip
 * expects one at the start of what it reads.  The first request's
 * recording (or what was read before it) holds it: keep a copy for the
 * connection's later passes. */
static void note_proxy_header(conn_rec *c, pc_conn_t *pcc)
{
    apr_size_t n;

    if (pcc->proxy_checked) {
        return;
    }
    pcc->proxy_checked = 1;
    if (!proxy_protocol_on(c)) {
        return;          /* "PROXY ..." would be a request line of its own */
    }
    n = proxy_len(pcc->head, pcc->len);
    if (n > 0) {
        pcc->proxy = apr_pmemdup(c->pool, pcc->head, n);
        pcc->proxy_len = n;
        pcc->head_has_proxy = !pcc->early;
    }
    else if ((pcc->len >= 6 && memcmp(pcc->head, "PROXY ", 6) == 0)
             || (pcc->len >= sizeof(proxy_v2sig)
                 && memcmp(pcc->head, proxy_v2sig,
                           sizeof(proxy_v2sig)) == 0)) {
        pcc->proxy_broken = 1;    /* cut short: a receiver could not use it */
    }
}

/* Makes the record that passes the connection, with the recorded head
 * and the core's read-ahead, to 'pool'; pc_handoff_finish sends it.
 * Everything that can fail before the send fails here, while the
 * client can still get an answer through httpd. */
static apr_status_t prepare_record(conn_rec *c, pc_conn_t *pcc, int pool,
                                   apr_uint32_t flags)
{
    pc_preamble_t *pre;
    apr_size_t proxy_n;
    apr_size_t extra;
    char *more;
    apr_status_t rv;

    if (pool < 0 || pool >= num_chans || chan_send[chan_base[pool]] < 0) {
        return APR_EINVAL;
    }
    if ((rv = flush_earlier_responses(c)) != APR_SUCCESS) {
        return rv;
    }
    /* In the connection's pool: the request's is gone by the send. */
    rv = read_ahead(c, PC_CHAN_MAX_PAYLOAD - sizeof(*pre) - pcc->len, &more,
                    &extra, c->pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* The connection's PROXY header goes first unless the recorded head
     * is the connection's first, which starts with it.  Decided by
     * position, never by what a head looks like: a client may send a
     * "PROXY ..." line of its own as a later request. */
    proxy_n = (pcc->proxy_len && !pcc->head_has_proxy) ? pcc->proxy_len : 0;
    if (proxy_n + pcc->len + extra + sizeof(*pre) > PC_CHAN_MAX_PAYLOAD) {
        return APR_ENOSPC;
    }
    pre = &pcc->pre;
    pre->keepalives = (uint32_t)c->keepalives;
    pre->flags = flags | (((uint32_t)pcc->way << PC_PRE_WAY_SHIFT)
                          & PC_PRE_WAY_MASK);
    pcc->out[0].iov_base = pre;
    pcc->out[0].iov_len = sizeof(*pre);
    pcc->out[1].iov_base = pcc->proxy;
    pcc->out[1].iov_len = proxy_n;
    pcc->out[2].iov_base = pcc->head;
    pcc->out[2].iov_len = pcc->len;
    pcc->out[3].iov_base = more;
    pcc->out[3].iov_len = extra;
    pcc->out_pool = pool;
    pcc->out_between = (flags & PC_PRE_BETWEEN) != 0;
    ap_log_cerror(APLOG_MARK, APLOG_TRACE1, 0, c,
                  "PC0304: passing %" APR_SIZE_T_FMT " head and %"
                  APR_SIZE_T_FMT " read-ahead bytes to pool %s", pcc->len,
                  extra, pc_pools_get(pool)->label);
    return APR_SUCCESS;
}

/* The answer refuse() gives, for a request httpd has already finished
 * with (the send failed after it let go of the connection), and the
 * parent's on listeners nobody accepts (pc_orphan.c). */
int pc_handoff_refusal(char *buf, apr_size_t size, int head_only)
{
    return apr_snprintf(buf, size,
                        "HTTP/1.1 503 Service Unavailable\r\n"
                        "Retry-After: 5\r\n"
                        "Content-Type: text/plain; charset=ISO-8859-1\r\n"
                        "Content-Length: %" APR_SIZE_T_FMT "\r\n"
                        "Connection: close\r\n\r\n%s",
                        sizeof(refusal_body) - 1,
                        head_only ? "" : refusal_body);
}

static void refuse_raw(apr_socket_t *sock, int head_only)
{
    char buf[512];
    apr_size_t len;

    len = (apr_size_t)pc_handoff_refusal(buf, sizeof(buf), head_only);
    apr_socket_timeout_set(sock, apr_time_from_sec(5));
    apr_socket_send(sock, buf, &len);
}

int pc_handoff_parent_chan(int pool, int way, int *ways, int *live)
{
    if (pool < 0 || pool >= num_chans) {
        *ways = *live = 0;
        return -1;
    }
    *ways = chan_ways[pool];
    *live = chan_live[pool];
    return way >= 0 && way < *ways ? chan_recv[chan_base[pool] + way] : -1;
}

/* Does a passed head start with something an HTTP/1 answer would not
 * mean anything to: a TLS record or HTTP/2's preface (after a PROXY
 * header, if any)? */
static int not_http1(const char *b, apr_size_t n)
{
    apr_size_t skip = proxy_len(b, n);

    b += skip;
    n -= skip;
    return n == 0 || (unsigned char)b[0] == 22
           || (n >= 3 && memcmp(b, "PRI", 3) == 0);
}

int pc_handoff_parkable(const pc_passed_t *passed)
{
    return (passed->pre_flags & PC_PRE_BETWEEN)
           && proxy_len(passed->bytes, passed->len) == passed->len;
}

void pc_handoff_refuse_passed(pc_passed_t *passed)
{
    char buf[512];
    int fd = passed->fd;

    if (!(passed->pre_flags & PC_PRE_BETWEEN)
        && !not_http1(passed->bytes, passed->len)) {
        apr_size_t skip = proxy_len(passed->bytes, passed->len);
        int head_only = passed->len - skip >= 5
                        && memcmp(passed->bytes + skip, "HEAD ", 5) == 0;
        int n = pc_handoff_refusal(buf, sizeof(buf), head_only);

        send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    shutdown(fd, SHUT_WR);
}

static const char *send_failure(apr_status_t rv)
{
    return rv == ETIMEDOUT ? "the owner pool did not take it in time" :
           rv == EPIPE ? "the owner pool's channel is closed" :
           "passing it on failed";
}

/* A request httpd parsed here and then let go counted as an access of
 * this worker (the end of a request does that); its owner counts it
 * again when it serves it.  server-status should count it once.  Taken
 * back before the send (the owner may count it, and a server-status
 * request may be the very one passed, before this thread runs again);
 * given back if the send fails and the request is answered here. */
static void uncount(conn_rec *c, pc_conn_t *pcc, int back)
{
    worker_score *ws;

    /* (httpd counts only with ExtendedStatus, mod_status's default.) */
    if (!pcc->out_counted || !ap_extended_status || c->sbh == NULL
        || (ws = ap_get_scoreboard_worker(c->sbh)) == NULL) {
        return;
    }
    if (back) {
        ws->access_count++;
        ws->my_access_count++;
        ws->conn_count++;
        return;
    }
    if (ws->access_count > 0) {
        ws->access_count--;
    }
    if (ws->my_access_count > 0) {
        ws->my_access_count--;
    }
    if (ws->conn_count > 0) {
        ws->conn_count--;
    }
}

/* Has the client reset the connection?  Then a 503 reaches nobody and
 * is no error of ours.  A client that only shut its sending side down
 * (CLOSE_WAIT) still reads the answer. */
static int client_gone(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    return fd >= 0
           && getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0
           && ti.tcpi_state == TCP_CLOSE;
}

/* Sends the record pass_on or give_back prepared, once httpd has let go
 * of the connection and just before the worker goes idle. */
void pc_handoff_finish(conn_rec *c)
{
    pc_conn_t *pcc = conn_state(c);
    apr_socket_t *sock = ap_get_conn_socket(c);
    pc_pool_t *want;
    apr_os_sock_t fd;
    apr_status_t rv;

    if (pcc == NULL || pcc->out_pool < 0 || sock == NULL) {
        return;
    }
    want = pc_pools_get(pcc->out_pool);
    apr_os_sock_get(&fd, sock);
    uncount(c, pcc, 0);
    rv = pc_chan_send(send_end(pcc->out_pool, pcc->out_way), fd, pcc->hops + 1,
                      pcc->out, 4, PC_SEND_TIMEOUT_MS);
    pcc->out_pool = -1;
    if (rv == APR_SUCCESS) {
        ap_log_cerror(APLOG_MARK, APLOG_TRACE1, 0, c,
                      "PC0303: passed the connection to pool %s",
                      want->label);
        pcc->out_counted = 0;
        return;
    }
    uncount(c, pcc, 1);
    pcc->out_counted = 0;
    if (pcc->out_between) {
        ap_log_cerror(APLOG_MARK, APLOG_INFO, rv, c,
                      "PC0305: cannot give the connection back to the "
                      "dispatch pool; closing it");
        return;
    }
    if (client_gone(fd)) {
        ap_log_cerror(APLOG_MARK, APLOG_INFO, 0, c,
                      "PC0322: the client reset the connection before it "
                      "could be passed to pool %s", want->label);
        return;
    }
    if (pcc->out_quiet != NULL) {
        /* Closed: no handshake (or HTTP/2 session) was begun here, so no
         * answer can be. */
        ap_log_cerror(APLOG_MARK, APLOG_ERR, rv, c,
                      "PC0309: %s connection for %s (pool %s) reached a "
                      "child of pool %s and %s; closing it", pcc->out_quiet,
                      pcc->out_vhost,
                      pc_pools_label(want),
                      pc_pools_label(pc_pools_get(pc_my_pool)),
                      send_failure(rv));
        return;
    }
    log_refusal(c, rv, pcc->out_vhost, want, send_failure(rv));
    refuse_raw(sock, pcc->out_head_only);
    /* The connection is ours again: a lingering close lets the client
     * read the answer before the socket goes. */
    c->aborted = 0;
}

/* The connection now belongs to another child: write nothing and shut
 * nothing down here; closing our descriptor leaves it to the other. */
static void forget(conn_rec *c)
{
    c->aborted = 1;
    c->keepalive = AP_CONN_CLOSE;
}

/* ... and the request is logged by the child that serves it.  Its
 * answer comes from there too: httpd's wind-down of it here (end of
 * stream, end of request) goes straight to the connection's filters,
 * which drop it, rather than through the protocol filters that would
 * build a response header nobody sends. */
static int forget_request(request_rec *r)
{
    pc_conn_t *pcc = conn_state(r->connection);

    if (pcc != NULL) {
        pcc->out_counted = 1;
    }
    forget(r->connection);
    r->proto_output_filters = r->connection->output_filters;
    r->output_filters = r->proto_output_filters;
    apr_table_setn(r->notes, "perchild-passed", "1");
    return DONE;
}

/* Is 'c' (or the connection its HTTP/2 stream runs on) TLS, or was it
 * when mod_ssl began? */
static int tls_connection(conn_rec *c)
{
    conn_rec *top = c->master != NULL ? c->master : c;
    pc_conn_t *pcc = conn_state(top);

    return (pcc != NULL && pcc->tls) || ap_ssl_conn_is_ssl(top);
}

static const char misdirected_body[] =
    "421 Misdirected Request: this connection was made for another site; "
    "please connect again.\n";

static void write_misdirected(request_rec *r)
{
    r->status = HTTP_MISDIRECTED_REQUEST;
    ap_set_content_type(r, "text/plain; charset=ISO-8859-1");
    ap_set_content_length(r, sizeof(misdirected_body) - 1);
    ap_rputs(misdirected_body, r);
}

/* The 421 at once: httpd runs nothing more of the request (DONE), and
 * ends an HTTP/1 connection after it ('close' says so to the client); an
 * HTTP/2 stream ends alone. */
static int misdirected_now(request_rec *r, int close)
{
    if (close) {
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    write_misdirected(r);
    return DONE;
}

/* A request on a connection that cannot move, for another pool's vhost:
 * a TLS connection (made, by its server name, for a vhost of this pool)
 * or an HTTP/2 stream (its session's state lives here).  421 asks the
 * client to open a connection of its own, which goes to that pool before
 * its handshake or session starts.  Browsers send such requests when one
 * certificate covers both names.
 *
 * On HTTP/1, DONE would end the connection, dropping the requests
 * pipelined after this one.  So the request is made the vhost the
 * connection's server name picked (a vhost of this pool), so that
 * nothing of the other vhost's configuration runs here (no other
 * module's hook, ErrorDocument or log), and the first quick handler
 * (answer_misdirected) answers, before anything maps the request to
 * files: the request ends as a normal one, and the connection goes on. */
static int misdirected(request_rec *r, const pc_pool_t *want)
{
    conn_rec *c = r->connection;
    const char *name;
    server_rec *own;

    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "PC0316: request for vhost %s (pool %s) came on a%s "
                  "connection held by pool %s; answering 421",
                  r->server->server_hostname, pc_pools_label(want),
                  c->master != NULL ? "n HTTP/2" : " TLS",
                  pc_pools_label(pc_pools_get(pc_my_pool)));
    if (c->master != NULL) {
        return misdirected_now(r, 0);
    }
    name = ap_ssl_var_lookup(r->pool, r->server, c, r, "SSL_TLS_SNI");
    own = pc_sni_vhost(c, name != NULL ? name : "");
    if (own == NULL || PC_SERVER_CONF(own)->pool != pc_my_pool) {
        return misdirected_now(r, 1);
    }
    r->server = own;
    r->per_dir_config = own->lookup_defaults;
    /* As httpd does when a request changes vhost. */
    apr_socket_timeout_set(ap_get_conn_socket(c), own->timeout);
    apr_table_setn(r->notes, "perchild-misdirected", "1");
    return DECLINED;
}

static int answer_misdirected(request_rec *r, int lookup)
{
    if (lookup || apr_table_get(r->notes, "perchild-misdirected") == NULL) {
        return DECLINED;
    }
    write_misdirected(r);
    return OK;
}

/* A child of an earlier generation, told to stop, read a request for
 * a pool that is down: after a graceful restart that removed that pool
 * (or gave its vhost to another), which only the new configuration
 * knows.  The successors of this child's own pool decide, by that
 * configuration, rather than the client getting a 503.  Returns the
 * pool to send to, or -1. */
static int to_successors(request_rec *r, pc_conn_t *pcc, int owner)
{
    int way;

    if (!pc_child_leaving() || !pc_child_superseded()
        || !pc_parent_pool_down(owner) || pc_my_pool < 0
        || owner == pc_my_pool || pc_one_process || pc_my_pool >= num_chans
        || send_end(pc_my_pool, 0) < 0) {
        return -1;
    }
    way = send_way(pc_my_pool, pcc);
    if (!pool_can_take(pc_my_pool, way)) {
        return -1;
    }
    pcc->out_way = way;
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "PC0325: request for vhost %s of pool %s, which is down: "
                  "left to this pool's new children, whose configuration "
                  "decides", r->server->server_hostname,
                  pc_pools_label(pc_pools_get(owner)));
    return pc_my_pool;
}

static int pass_on(request_rec *r, int owner)
{
    pc_conn_t *pcc = conn_state(r->connection);
    pc_pool_t *want = pc_pools_get(owner);
    apr_status_t rv;

    if (r->connection->master != NULL || tls_connection(r->connection)) {
        /* The TLS or HTTP/2 session lives in this process and cannot
         * move. */
        return misdirected(r, want);
    }

    if (pcc == NULL || pcc->filter == NULL
        || chan_send[chan_base[owner]] < 0) {
        return refuse(r, want, "cannot pass it on");
    }
    if (pcc->overflow) {
        return refuse(r, want, "its head is too large to pass on");
    }
    if (pcc->proxy_broken) {
        return refuse(r, want, "its PROXY header is too large to pass on");
    }
    if (pcc->hops >= PC_MAX_HOPS) {
        return refuse(r, want, "it was passed on too often");
    }
    pcc->out_way = send_way(owner, pcc);
    if (!pool_can_take(owner, pcc->out_way)
        && (owner = to_successors(r, pcc, owner)) < 0) {
        return refuse(r, want, "the owner pool is down or overloaded");
    }
    rv = prepare_record(r->connection, pcc, owner, 0);
    if (rv != APR_SUCCESS) {
        return refuse(r, want,
                      rv == APR_ENOSPC ? "its head and read-ahead are too "
                                         "large to pass on" :
                      "passing it on failed");
    }
    pcc->out_head_only = r->header_only;
    pcc->out_vhost = r->server->server_hostname;
    return forget_request(r);
}

/* Heads longer than this are left to httpd's own path. */
#define PC_HINT_PEEK 4096

/* Copies what the core has read of the next request (at least a byte,
 * after a speculative read) into 'buf' (of 'max' bytes), without reading
 * the socket. */
static apr_size_t peek_head(conn_rec *c, char *buf, apr_size_t max)
{
    apr_bucket_brigade *bb = core_read_ahead(c);
    apr_bucket *e;
    apr_size_t n = 0;

    if (bb == NULL) {
        return 0;
    }
    for (e = APR_BRIGADE_FIRST(bb);
         e != APR_BRIGADE_SENTINEL(bb) && n < max;
         e = APR_BUCKET_NEXT(e)) {
        const char *data;
        apr_size_t len;

        if (APR_BUCKET_IS_METADATA(e) || APR_BUCKET_IS_SOCKET(e)
            || e->length == (apr_size_t)-1
            || apr_bucket_read(e, &data, &len, APR_NONBLOCK_READ)
               != APR_SUCCESS) {
            break;
        }
        if (len > max - n) {
            len = max - n;
        }
        memcpy(buf + n, data, len);
        n += len;
    }
    return n;
}

/* Waits for the first byte of what is next on the connection as the
 * caller's own read would (blocking or not), without consuming it: the
 * core keeps what the socket gave in its read-ahead.  Returns 1 when
 * there is some; 0 with *rv the read's status otherwise (APR_SUCCESS:
 * nothing yet, or end of file). */
static int first_bytes(ap_filter_t *f, pc_conn_t *pcc,
                       apr_read_type_e block, apr_status_t *rv)
{
    int got;

    if (pcc->peek == NULL) {
        pcc->peek = apr_brigade_create(f->c->pool, f->c->bucket_alloc);
    }
    *rv = ap_get_brigade(f->next, pcc->peek, AP_MODE_SPECULATIVE, block, 1);
    got = *rv == APR_SUCCESS && !APR_BRIGADE_EMPTY(pcc->peek);
    apr_brigade_cleanup(pcc->peek);
    return got;
}

/* Makes the record that takes the connection to 'owner' before httpd
 * has read a request from it, if that pool can have it now; 0 leaves the
 * connection here, to httpd's own path. */
static int ready_to_leave(conn_rec *c, pc_conn_t *pcc, int owner)
{
    if (owner < 0 || owner >= num_chans || owner == pc_my_pool
        || chan_send[chan_base[owner]] < 0) {
        return 0;
    }
    pcc->out_way = send_way(owner, pcc);
    return pool_can_take(owner, pcc->out_way)
           && prepare_record(c, pcc, owner, 0) == APR_SUCCESS;
}

/* The connection is leaving: reads see end of file, nothing is written
 * or shut down here. */
static void leave(conn_rec *c, pc_conn_t *pcc)
{
    pcc->recording = 0;
    pcc->gone = 1;
    forget(c);
}

/* Called as httpd starts to read a request line.  If the head already
 * read names a Host that httpd gave to another pool's vhost before, on
 * this kind of connection (pc_hint.c), the connection goes to that pool
 * now: httpd does not parse a request that is not ours, nor wind one
 * down.  Returns 1 if it goes.  Anything unusual (a partial head, an
 * unknown Host, a pool that cannot take it) takes httpd's own path,
 * which parses and decides, and answers errors.  '*rv' is what the wait
 * for the request's first byte gave: an error (a timeout, a reset) is
 * httpd's read's result, so that it does not wait a second time. */
static int pass_by_hint(ap_filter_t *f, pc_conn_t *pcc,
                        apr_read_type_e block, apr_status_t *rv)
{
    conn_rec *c = f->c;
    server_rec *s = c->base_server;
    pc_hint_limits_t limits;
    apr_size_t len;
    int owner;

    if (!first_bytes(f, pcc, block, rv)) {
        /* An error ends the look (httpd's read gets it); nothing yet
         * (non-blocking), or end of file: httpd's read sees the same. */
        pcc->hint_ok = *rv == APR_SUCCESS;
        return 0;
    }
    pcc->hint_ok = 0;             /* one look per request */
    if (pcc->peek_buf == NULL) {
        pcc->peek_buf = apr_palloc(c->pool, PC_HINT_PEEK);
    }
    /* A PROXY header in front is request data here (mod_remoteip reads
     * a real one before httpd's first GETLINE): the scan refuses it. */
    len = peek_head(c, pcc->peek_buf, PC_HINT_PEEK);
    limits.line = (apr_size_t)s->limit_req_line;
    limits.field = (apr_size_t)s->limit_req_fieldsize;
    limits.fields = s->limit_req_fields;
    if (!pc_hint_scan(pcc->peek_buf, len, &limits, &pcc->key)) {
        return 0;
    }
    owner = pc_hint_lookup(c, &pcc->key);
    if (owner < 0) {
        pcc->learn = 1;           /* check_owner learns httpd's choice */
        return 0;
    }
    if (pcc->tls || ap_ssl_conn_is_ssl(c) || pcc->proxy_broken
        || !ready_to_leave(c, pcc, owner)) {
        return 0;                 /* httpd's path refuses it properly */
    }
    pcc->out_head_only = pcc->key.head_only;
    pcc->out_vhost = apr_pstrmemdup(c->pool, pcc->key.host, pcc->key.len);
    leave(c, pcc);
    ap_log_cerror(APLOG_MARK, APLOG_TRACE2, 0, c,
                  "PC0307: Host %s is pool %s's: passed before parsing",
                  pcc->out_vhost, pc_pools_get(owner)->label);
    return 1;
}

/* A look at a connection's first bytes, before any module reads them
 * (pass_by_sni, pass_by_h2c): how long, and how many more socket reads,
 * it may still wait for the rest of what it needs. */
typedef struct look_t {
    int can_wait;            /* a blocking read, with a socket timeout */
    apr_time_t deadline;
    int reads;               /* socket reads left */
} look_t;

/* Socket reads a look may make: a 16 KiB ClientHello or HEADERS frame
 * comes in a dozen segments over the Internet.  Each speculative read
 * makes the core copy its read-ahead again: no more for a client that
 * trickles bytes. */
#define PC_LOOK_READS 32

/* Starts a look before its first wait.  The deadline is the socket's
 * timeout from now, which is what is left of the time mod_reqtimeout
 * gives a connection's start (it sets the timeout so): one deadline for
 * the whole look, first byte included, so a client that trickles bytes
 * gets no more time than without it. */
static void look_start(conn_rec *c, apr_read_type_e block, look_t *lk)
{
    apr_interval_time_t timeout = -1;

    lk->reads = PC_LOOK_READS;
    lk->can_wait = block == APR_BLOCK_READ
                   && apr_socket_timeout_get(ap_get_conn_socket(c), &timeout)
                      == APR_SUCCESS;
    lk->deadline = apr_time_now() + (timeout < 0 ? apr_time_from_sec(60)
                                                 : timeout);
}

/* Waits, within the look's deadline and reads, for the core's
 * read-ahead to hold 'need' bytes (of which 'buf', of 'max' bytes, holds
 * 'len' now); returns how many 'buf' holds then.  Nothing is consumed. */
static apr_size_t peek_until(ap_filter_t *f, apr_bucket_brigade *bb,
                             char *buf, apr_size_t max, apr_size_t len,
                             apr_size_t need, look_t *lk)
{
    conn_rec *c = f->c;
    apr_os_sock_t fd;

    if (!lk->can_wait || need > max
        || apr_os_sock_get(&fd, ap_get_conn_socket(c)) != APR_SUCCESS) {
        return len;
    }
    while (len < need && lk->reads > 0) {
        struct pollfd pfd;
        apr_time_t left = lk->deadline - apr_time_now();

        lk->reads--;
        pfd.fd = fd;
        pfd.events = POLLIN;
        if (left <= 0
            || poll(&pfd, 1, (int)apr_time_as_msec(left) + 1) != 1) {
            break;                /* the caller's own read times out */
        }
        /* The core reads what the socket has without waiting. */
        if (ap_get_brigade(f->next, bb, AP_MODE_SPECULATIVE, APR_NONBLOCK_READ,
                           (apr_off_t)need) != APR_SUCCESS) {
            break;
        }
        apr_brigade_cleanup(bb);
        len = peek_head(c, buf, max);
    }
    return len;
}

/* The start of a look: waits for the first bytes as the caller's read
 * would, and for at least one byte after a PROXY header in front (which
 * mod_remoteip is reading; a load balancer may send it on its own).
 * Returns how many bytes 'buf' holds, with *skip the PROXY header's
 * length; 0 if there is nothing to look at (*rv: the read's status). */
static apr_size_t look_first(ap_filter_t *f, pc_conn_t *pcc,
                             apr_read_type_e block, look_t *lk, char *buf,
                             apr_size_t max, apr_size_t *skip,
                             apr_status_t *rv)
{
    apr_size_t len;

    *skip = 0;
    if (!first_bytes(f, pcc, block, rv)) {
        return 0;
    }
    len = peek_head(f->c, buf, max);
    if (proxy_protocol_on(f->c)) {
        *skip = proxy_len(buf, len);
        if (*skip == 0) {
            return 0;             /* not all of it yet: left alone */
        }
        len = peek_until(f, pcc->peek, buf, max, len, *skip + 1, lk);
    }
    return len > *skip ? len : 0;
}

/* Begins a look at a connection accepted here before anything read from
 * it (a connection passed here was looked at by its sender): the bytes
 * *buf holds (a buffer of 'max' bytes, made if *buf is NULL), 0 if there
 * is nothing to look at.  *done: whether to look no more (only a
 * non-blocking read that found nothing yet looks again at the next). */
static apr_size_t look_begin(ap_filter_t *f, pc_conn_t *pcc,
                             apr_read_type_e block, look_t *lk, char **buf,
                             apr_size_t max, apr_size_t *skip, int *done,
                             apr_status_t *rv)
{
    apr_size_t len;

    *rv = APR_SUCCESS;
    *skip = 0;
    if (pc_my_pool < 0 || pcc->hops > 0 || pcc->len > 0) {
        *done = 1;
        return 0;
    }
    if (*buf == NULL) {
        *buf = apr_palloc(f->c->pool, max);
    }
    look_start(f->c, block, lk);
    len = look_first(f, pcc, block, lk, *buf, max, skip, rv);
    *done = len > 0 || *rv != APR_SUCCESS || block == APR_BLOCK_READ;
    return len;
}

/* The connection goes, before any module began with it, to the pool of
 * the vhost 'name' picks (pc_sni_vhost), if that is another pool and it
 * can have it now.  Returns that pool, or -1 if it stays.  'what' is
 * "TLS" or "HTTP/2": a failed send then closes it, as no HTTP/1 answer
 * means anything to its client. */
static int leave_before_start(conn_rec *c, pc_conn_t *pcc, const char *name,
                              const char *what)
{
    int owner = PC_SERVER_CONF(pc_sni_vhost(c, name))->pool;

    if (!ready_to_leave(c, pcc, owner)) {
        return -1;
    }
    pcc->out_vhost = apr_pstrdup(c->pool, name);
    pcc->out_quiet = what;
    leave(c, pcc);
    return owner;
}

/* The most of a connection's first bytes looked at for a ClientHello:
 * a PROXY header (v2 with TLVs) and one whole TLS record, which holds
 * any ClientHello of today's clients; a buffer of that size is taken
 * for each new TLS connection.  A ClientHello spread over several
 * records (one larger than a record, or split by the client or on the
 * way) gets the larger one, up to 64 KiB of records. */
#define PC_SNI_PEEK (536 + 5 + 16384)
#define PC_SNI_PEEK_MAX (536 + 65536)

/* Waits until the core's read-ahead holds the whole ClientHello that
 * starts 'skip' bytes in, in as many TLS records as it came in (and as
 * many TCP segments: post-quantum key shares make one record larger than
 * a segment); returns how many bytes pcc->peek_tls holds. */
static apr_size_t peek_tls_hello(ap_filter_t *f, pc_conn_t *pcc,
                                 apr_size_t skip, apr_size_t len,
                                 look_t *lk, apr_size_t *cap)
{
    apr_size_t need;

    while ((need = pc_sni_need((const unsigned char *)pcc->peek_tls + skip,
                               len - skip)) > 0) {
        need += skip;
        if (need > *cap) {
            if (need > PC_SNI_PEEK_MAX || *cap == PC_SNI_PEEK_MAX) {
                break;            /* no ClientHello that size is kept */
            }
            *cap = PC_SNI_PEEK_MAX;
            pcc->peek_tls = apr_palloc(f->c->pool, *cap);
            len = peek_head(f->c, pcc->peek_tls, *cap);
        }
        if (len < need) {
            apr_size_t before = len;

            len = peek_until(f, pcc->peek, pcc->peek_tls, *cap, len, need,
                             lk);
            if (len < need || len == before) {
                break;            /* no more in time */
            }
        }
    }
    return len;
}

/* Called at the first read of a TLS connection accepted here, under
 * mod_ssl's handshake (or mod_remoteip's read of a PROXY header in front
 * of it), before any handshake: if its ClientHello names (by SNI) a vhost
 * of another pool, the connection goes there with the bytes read, and
 * that pool's child does the handshake (and serves the connection for
 * its life: a TLS session cannot move later).  Returns 1 if it goes;
 * mod_ssl then sees the connection aborted.  Anything else (no whole
 * ClientHello in time, no pool to take it) stays here, as before: the
 * handshake goes on, and requests for other pools' vhosts get 421. */
static int pass_by_sni(ap_filter_t *f, pc_conn_t *pcc,
                       apr_read_type_e block, apr_status_t *rv)
{
    conn_rec *c = f->c;
    char name[PC_SNI_MAX + 1];
    apr_size_t len, skip, cap = PC_SNI_PEEK;
    apr_pool_t *tmp;
    look_t lk;
    int owner, found;

    len = look_begin(f, pcc, block, &lk, &pcc->peek_tls, PC_SNI_PEEK, &skip,
                     &pcc->sni_done, rv);
    if (len == 0) {
        return 0;
    }
    len = peek_tls_hello(f, pcc, skip, len, &lk, &cap);
    apr_pool_create(&tmp, c->pool);
    found = pc_sni_parse((const unsigned char *)pcc->peek_tls + skip,
                         len - skip, apr_palloc(tmp, len - skip), name);
    apr_pool_destroy(tmp);
    if (found < 0) {
        return 0;
    }
    if ((owner = leave_before_start(c, pcc, name, "TLS")) < 0) {
        return 0;
    }
    ap_log_cerror(APLOG_MARK, APLOG_TRACE1, 0, c,
                  "PC0308: TLS server name %s is pool %s's: passed before "
                  "the handshake", name[0] ? name : "(none)",
                  pc_pools_get(owner)->label);
    return 1;
}

/* The most of a connection's first bytes looked at for a cleartext
 * HTTP/2 start: a PROXY header, the preface, a SETTINGS and a
 * WINDOW_UPDATE frame, and a first HEADERS frame of up to 16 KiB. */
#define PC_H2C_PEEK (536 + PC_H2C_PREFACE_LEN + 2 * 64 + 9 + 16384)
/* ... and with a first header block that goes on in CONTINUATION
 * frames (large cookies, say). */
#define PC_H2C_PEEK_MAX (536 + 65536)

/* How long the look waits for a client's next frame when all it sent
 * so far are whole frames (see h2c_first_host). */
#define PC_H2C_FRAME_WAIT apr_time_from_msec(200)

/* Do the bytes after 'skip' start like HTTP/2's preface, as far as
 * there are any? */
static int looks_h2c(const char *b, apr_size_t len, apr_size_t skip)
{
    apr_size_t n = len - skip;

    if (n > PC_H2C_PREFACE_LEN) {
        n = PC_H2C_PREFACE_LEN;
    }
    return n > 0 && memcmp(b + skip, PC_H2C_PREFACE, n) == 0;
}

/* A dispatch child, which serves nothing, may speak for the server at
 * the start of an HTTP/2 connection: it sends the server's empty
 * SETTINGS, so that a client waiting for them sends its first request,
 * and takes the client's ACK of them out of what it passes on (the
 * owner's mod_http2 sends SETTINGS of its own, and an ACK it did not ask
 * for would end the session).  Returns 1 if they were sent. */
static int send_server_preface(conn_rec *c)
{
    apr_os_sock_t fd;

    if (pc_conf->dispatch_pool < 0 || pc_my_pool != pc_conf->dispatch_pool
        || apr_os_sock_get(&fd, ap_get_conn_socket(c)) != APR_SUCCESS) {
        return 0;
    }
    return send(fd, PC_H2C_SERVER_PREFACE, PC_H2C_SERVER_PREFACE_LEN,
                MSG_DONTWAIT | MSG_NOSIGNAL) == PC_H2C_SERVER_PREFACE_LEN;
}

/* Takes the client's ACK of the SETTINGS send_server_preface sent out of
 * the record: it starts 'at' bytes into the forwarded read-ahead. */
static void drop_settings_ack(pc_conn_t *pcc, apr_size_t at)
{
    struct iovec *ra = &pcc->out[3];
    char *b = ra->iov_base;

    if (pcc->len != 0 || pcc->out[1].iov_len != 0
        || at + PC_H2C_FRAME_HEADER_LEN > ra->iov_len) {
        return;                   /* (checked before the record was made) */
    }
    memmove(b + at, b + at + PC_H2C_FRAME_HEADER_LEN,
            ra->iov_len - at - PC_H2C_FRAME_HEADER_LEN);
    ra->iov_len -= PC_H2C_FRAME_HEADER_LEN;
}

/* The look's buffers, in a pool of their own that ends with the look:
 * a connection that stays (an HTTP/2 session may last for hours) keeps
 * none of them. */
typedef struct h2c_peek_t {
    apr_pool_t *p;
    char *buf;               /* the connection's first bytes, as read */
    apr_size_t cap;          /* PC_H2C_PEEK, or PC_H2C_PEEK_MAX */
    unsigned char *scratch;  /* (cap bytes) a header block, joined */
} h2c_peek_t;

static void h2c_peek_alloc(conn_rec *c, h2c_peek_t *pk, apr_size_t cap)
{
    pk->cap = cap;
    pk->buf = apr_palloc(pk->p, cap);
    pk->scratch = apr_palloc(pk->p, cap);
}

/* The host the connection's first HTTP/2 request asks for, waiting for
 * the frames that carry it.  Returns 1 and 'host' if it is there.  Until
 * the whole preface is there, each wait is for one more segment and the
 * bytes are looked at again after it: a client that only started like
 * HTTP/2 ("P" of "POST") is let go as soon as it differs. */
static int h2c_first_host(ap_filter_t *f, pc_conn_t *pcc, h2c_peek_t *pk,
                          apr_size_t skip, apr_size_t *lenp, look_t *lk,
                          char *host)
{
    apr_size_t len = *lenp;
    char *buf = pk->buf;

    for (;;) {
        apr_size_t need = 0, had = len;
        int open;
        int rv = pc_h2c_parse((const unsigned char *)buf + skip, len - skip,
                              pk->scratch, host, &need, &open);

        *lenp = len;
        if (rv != 0) {
            return rv == 1;
        }
        if (len - skip < PC_H2C_PREFACE_LEN) {
            need = len - skip + 1;
        }
        if (skip + need > pk->cap) {
            /* A first header block in CONTINUATION frames. */
            if (skip + need > PC_H2C_PEEK_MAX || pk->cap == PC_H2C_PEEK_MAX) {
                return 0;
            }
            h2c_peek_alloc(f->c, pk, PC_H2C_PEEK_MAX);
            buf = pk->buf;
            len = peek_head(f->c, buf, pk->cap);
            continue;             /* what the core had may be all of it */
        }
        if (need == len - skip + PC_H2C_FRAME_HEADER_LEN && !open
            && pcc->h2c_settings_at == 0) {
            /* Only whole frames so far: a client may wait for the
             * server's SETTINGS before its first request (gRPC does), and
             * nothing answers it until mod_http2 starts.  A short wait;
             * then the session starts here, or a dispatch child sends
             * the SETTINGS itself and waits on. */
            look_t brief = *lk;
            apr_time_t soon = apr_time_now() + PC_H2C_FRAME_WAIT;

            if (brief.deadline > soon) {
                brief.deadline = soon;
            }
            len = peek_until(f, pcc->peek, buf, pk->cap, len,
                             skip + need, &brief);
            lk->reads = brief.reads;
            if (len <= had && send_server_preface(f->c)) {
                pcc->h2c_settings_at = len - skip;
                continue;
            }
        }
        else {
            len = peek_until(f, pcc->peek, buf, pk->cap, len,
                             skip + need, lk);
        }
        if (len <= had) {
            return 0;             /* mod_http2's own read times out */
        }
    }
}

/* Called at the first read of a plain connection accepted here before
 * its first request: mod_http2's look for the HTTP/2 preface (direct
 * mode, "Protocols h2c ..."), or mod_remoteip's read of a PROXY header.
 * If the client speaks HTTP/2 from its first byte and its first request
 * names a host of another pool, the connection goes there with the bytes
 * read, and that pool's mod_http2 runs the session (for the connection's
 * life: the session's state cannot move later).  Returns 1 if it goes;
 * mod_http2 then sees end of file.  Anything else stays here: HTTP/1.1
 * takes its usual path, and an HTTP/2 session here answers requests for
 * other pools' hosts with 421.  (pass_by_h2c below runs it with the
 * look's own pool, which it ends.) */
static int h2c_look(ap_filter_t *f, pc_conn_t *pcc, apr_read_type_e block,
                    apr_status_t *rv, h2c_peek_t *pk)
{
    conn_rec *c = f->c;
    char first_buf[536 + PC_H2C_PREFACE_LEN];
    char *first = first_buf;
    char host[PC_H2C_MAX + 1];
    apr_size_t len, skip;
    look_t lk;
    long ack = -1;
    int owner;

    len = look_begin(f, pcc, block, &lk, &first, sizeof(first_buf), &skip,
                     &pcc->h2c_done, rv);
    if (len == 0 || !looks_h2c(first, len, skip)) {
        return 0;                 /* HTTP/1.x: decided per request */
    }
    apr_pool_create(&pk->p, c->pool);
    h2c_peek_alloc(c, pk, PC_H2C_PEEK);
    len = peek_head(c, pk->buf, pk->cap);
    if (!h2c_first_host(f, pcc, pk, skip, &len, &lk, host)) {
        return 0;
    }
    while (pcc->h2c_settings_at > 0
           && (ack = pc_h2c_settings_ack((const unsigned char *)pk->buf + skip,
                                         len - skip, pcc->h2c_settings_at))
              < 0) {
        /* The client's ACK of our SETTINGS must be in what goes; it may
         * come after its first request (it sent that before it read our
         * SETTINGS), and it must come at once (RFC 9113, 6.5.3). */
        apr_size_t had = len;

        len = peek_until(f, pcc->peek, pk->buf, pk->cap, len, len + 1, &lk);
        if (len <= had) {
            return 0;
        }
    }
    if ((owner = leave_before_start(c, pcc, host, "HTTP/2")) < 0) {
        return 0;
    }
    if (ack >= 0) {
        drop_settings_ack(pcc, skip + (apr_size_t)ack);
    }
    ap_log_cerror(APLOG_MARK, APLOG_TRACE1, 0, c,
                  "PC0317: HTTP/2 (cleartext) host %s is pool %s's: passed "
                  "before the session", host[0] ? host : "(none)",
                  pc_pools_get(owner)->label);
    return 1;
}

/* h2c_look, and the end of the buffers it took (h2c_peek_t). */
static int pass_by_h2c(ap_filter_t *f, pc_conn_t *pcc,
                       apr_read_type_e block, apr_status_t *rv)
{
    h2c_peek_t pk;
    int gone;

    pk.p = NULL;
    gone = h2c_look(f, pcc, block, rv, &pk);
    if (pk.p != NULL) {
        apr_pool_destroy(pk.p);
    }
    return gone;
}

/* Errors that httpd finds in the bytes of a request head alone (not a
 * timeout): the owner, reading the same bytes, finds the same. */
static int decided_by_bytes(int status)
{
    switch (status) {
    case HTTP_BAD_REQUEST:
    case HTTP_REQUEST_URI_TOO_LARGE:
    case HTTP_EXPECTATION_FAILED:
    case HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE:
    case HTTP_NOT_IMPLEMENTED:
    case HTTP_VERSION_NOT_SUPPORTED:
        return 1;
    }
    return 0;
}

/* httpd found an error while reading a request head, before our check,
 * and the vhost then in effect (the address's default one, or the one
 * the Host named) is another pool's.  Answered here, the error would get
 * httpd's plain page and no access-log line (that vhost's ErrorDocument
 * and logs are not this process's to use).  So the owner gets the
 * connection and finds the same error itself, with its ErrorDocument
 * and in its logs (a timeout: told so, see PC_PRE_TIMED_OUT).  Not when
 * the bytes only just came from another pool (no ping-pong), nor when
 * the connection cannot move: then the error is answered here as
 * before.  Returns 1 if the connection goes. */
static int pass_early_error(request_rec *r)
{
    request_rec *orig = r;
    conn_rec *c = r->connection;
    pc_conn_t *pcc = conn_state(c);
    int owner, timeout;

    while (orig->prev != NULL) {
        orig = orig->prev;
    }
    owner = PC_SERVER_CONF(orig->server)->pool;
    timeout = orig->status == HTTP_REQUEST_TIME_OUT;
    if (pc_conf->dispatch_pool >= 0 && pc_my_pool == pc_conf->dispatch_pool
        && orig->server == c->base_server
        && orig->status != HTTP_EXPECTATION_FAILED) {
        /* The dispatch pool: httpd may not have chosen the vhost from the
         * Host yet (it has for a 417), and the address's first vhost's
         * tenant must not read a request that names another's.  Answered
         * here. */
        return 0;
    }
    if (pcc == NULL || pcc->filter == NULL || !pcc->fresh
        || pcc->overflow || pcc->proxy_broken || owner == pc_my_pool
        || owner < 0
        || !(decided_by_bytes(orig->status) || timeout) || pcc->tls
        || ap_ssl_conn_is_ssl(c)
        || chan_send[chan_base[owner]] < 0) {
        return 0;
    }
    pcc->out_way = send_way(owner, pcc);
    if (!pool_can_take(owner, pcc->out_way)
        || prepare_record(c, pcc, owner, timeout ? PC_PRE_TIMED_OUT : 0)
           != APR_SUCCESS) {
        return 0;
    }
    pcc->out_head_only = orig->header_only;
    pcc->out_vhost = orig->server->server_hostname;
    forget_request(r);
    apr_table_setn(orig->notes, "perchild-passed", "1");
    return 1;
}

/* insert_error_filter: an error response (without an ErrorDocument that
 * redirects) is about to be written. */
static void error_response(request_rec *r)
{
    pc_conn_t *pcc = conn_state(r->connection);

    if (pc_my_pool >= 0 && pcc != NULL && pcc->recording && r->prev == NULL
        && r->main == NULL && pass_early_error(r)) {
        pcc->recording = 0;
    }
}

static int check_owner(request_rec *r)
{
    pc_conn_t *pcc = conn_state(r->connection);
    pc_server_conf_t *sc;
    int unchecked = 0;

    if (pcc != NULL && pcc->recording) {
        pcc->recording = 0;
        unchecked = 1;
        note_proxy_header(r->connection, pcc);
    }
    if (pc_my_pool < 0 || r->main != NULL) {
        return DECLINED;
    }
    sc = PC_SERVER_CONF(r->server);
    if (unchecked && pcc->learn && r->prev == NULL) {
        pc_hint_learn(r->connection, &pcc->key, sc->pool);
    }
    if (sc->pool == pc_my_pool) {
        if (pcc != NULL && r->prev == NULL) {
            pcc->served++;
            pcc->hops = 0;
        }
        return DECLINED;
    }
    if (r->prev != NULL) {
        /* An internal redirect (an ErrorDocument of an error found
         * before our check) into another pool's vhost: never run it
         * here, and a mid-response connection cannot move; but the
         * connection may go to the owner before any response. */
        if (unchecked && pass_early_error(r)) {
            return DONE;
        }
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "PC0306: internal redirect into vhost %s of pool %s "
                      "refused in pool %s",
                      r->server->server_hostname,
                      pc_pools_label(pc_pools_get(sc->pool)),
                      pc_pools_label(pc_pools_get(pc_my_pool)));
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (pcc != NULL && pcc->tls && !ap_ssl_conn_is_ssl(r->connection)) {
        /* Plain HTTP to a TLS port: mod_ssl dropped its session and would
         * answer 400 after us.  The connection cannot move, and nothing
         * of another pool's vhost may run here: the same 400, now. */
        apr_table_setn(r->notes, "error-notes",
                       "Reason: this port speaks TLS; the request came in "
                       "plain HTTP. Use an https:// URL.<br />\n");
        return HTTP_BAD_REQUEST;
    }
    return pass_on(r, sc->pool);
}

/* A request whose connection was passed on is logged by the child that
 * serves it, not here.  log_transaction runs every hook until one says
 * something other than OK or DECLINED: DONE stops mod_log_config. */
static int skip_log(request_rec *r)
{
    pc_conn_t *pcc;

    if (apr_table_get(r->notes, "perchild-passed") != NULL) {
        return DONE;
    }
    /* A request line that timed out on a fresh connection gets no
     * answer, only this log line: the address's default vhost's, which
     * may be another pool's. */
    pcc = conn_state(r->connection);
    if (r->status == HTTP_REQUEST_TIME_OUT && r->method == NULL
        && pc_my_pool >= 0 && pcc != NULL && pcc->recording
        && r->prev == NULL && r->main == NULL && pass_early_error(r)) {
        pcc->recording = 0;
        /* httpd counts no access for it (no end-of-request bucket). */
        pcc->out_counted = 0;
        return DONE;
    }
    return DECLINED;
}

void pc_handoff_register_hooks(apr_pool_t *p)
{
    /* REALLY_FIRST: no other module may see a request this process must
     * not serve. */
    ap_hook_post_read_request(check_owner, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_pre_read_request(pre_read_request, NULL, NULL,
                             APR_HOOK_REALLY_FIRST);
    ap_hook_pre_connection(pre_connection, NULL, NULL, APR_HOOK_MIDDLE);
    /* Before the core's, which would only add the socket. */
    ap_hook_insert_network_bucket(insert_network_bucket, NULL, NULL,
                                  APR_HOOK_REALLY_FIRST);
    ap_hook_log_transaction(skip_log, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_quick_handler(answer_misdirected, NULL, NULL,
                          APR_HOOK_REALLY_FIRST);
    ap_hook_insert_error_filter(error_response, NULL, NULL,
                                APR_HOOK_REALLY_FIRST);
    /* Just above the core's input filter: sees the bytes as read. */
    record_filter_handle = ap_register_input_filter(RECORD_FILTER,
                                                    record_filter, NULL,
                                                    AP_FTYPE_NETWORK - 1);
}
