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

/* perchild.h: state shared by the files of the perchild MPM.
 *
 * Layers and their prefixes:
 *   mpm_perchild.c  hooks, directives, ap_mpm_query     (perchild_)
 *   pc_pools.c      identities, pools, vhost/listener ownership (pc_pools_)
 *   pc_parent.c     the root parent: spawn, reap, restart (pc_parent_)
 *   pc_child.c      a child: privileges, threads, socket table (pc_child_)
 *   pc_handoff.c    the per-request ownership check     (pc_handoff_)
 *   pc_status.c     mod_status report                   (pc_status_)
 *   pc_logs.c       other pools' log descriptors out of a child (pc_logs_)
 *   pc_progs.c      other users' programs' pipes out of a child (pc_progs_)
 *   pc_park.c       dispatch pool: idle keep-alive without a thread (pc_park_)
 *   pc_channel.c    descriptor channel, knows no HTTP   (pc_chan_)
 */

#ifndef PERCHILD_H
#define PERCHILD_H

#include "httpd.h"
#include "http_config.h"
#include "ap_listen.h"
#include "ap_mpm.h"
#include "mpm_common.h"
#include "scoreboard.h"
#include "unixd.h"
#include "apr_hash.h"

#include <poll.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* Directive limits.  Same hard ceilings as worker's. */
#define PC_MAX_SERVER_LIMIT 20000
#define PC_MAX_THREAD_LIMIT 20000
#define PC_MIN_SERVER_LIMIT 16

/* One pool: the children that serve as one user and group. */
typedef struct pc_pool_t {
    int index;               /* position in pc_conf.pools */
    uid_t uid;
    gid_t gid;
    const char *user_name;   /* for initgroups and log lines */
    const char *group_name;
    int num_children;        /* 0 until resolved: then >= 1 */
    int from_directive;      /* 1: ChildPerUserID named it */
    int dispatch;            /* 1: the dispatch pool, serves nothing */
    int first_slot;          /* first scoreboard slot of the pool */
    int slots;               /* slots actually given (<= num_children) */
    const char *origin;      /* where it was declared, for messages */
    server_rec *first_vhost; /* implicit pools: the first that names it */
    const char *label;       /* "user:group", for logs and mod_status */
    gid_t *groups;           /* supplementary groups, resolved by the */
    int ngroups;             /*   parent (getgrouplist) at config time */
} pc_pool_t;

/* Ownership of one listener, computed in the parent at open_logs. */
typedef struct pc_listener_t {
    ap_listen_rec *lr;
    int bucket;              /* ListenCoresBucketsRatio: which copy */
    int owner;               /* pool index, or -1: shared by many pools */
    const unsigned char *takers;  /* shared: [pool] 1 if a vhost of that
                                   * pool (or the main server's, if it can
                                   * answer there) is reachable on it */
    int tls;                 /* Listen ... https: connections cannot move */
} pc_listener_t;

/* What the configuration says.  Rebuilt on every (re)load in pconf. */
typedef struct pc_conf_t {
    apr_array_header_t *declared;   /* pc_pool_t from ChildPerUserID */
    apr_array_header_t *pools;      /* pc_pool_t; [0] is User/Group's */
    apr_array_header_t *listeners;  /* pc_listener_t, of every bucket */
    int num_buckets;                /* listener buckets (SO_REUSEPORT) */
    pc_pool_t *dispatch_decl;       /* DispatchUserID, or NULL */
    int dispatch_pool;              /* its pool index, or -1 */
    int dispatch_all;               /* PerchildDispatchAll: every listener */
    int cpu_affinity;               /* PerchildCPUAffinity */
    int num_servers;                /* NumServers */
    int threads_per_child;
    int thread_limit;
    int server_limit;               /* in force (retained across graceful) */
    int server_limit_set;           /* ServerLimit given explicitly */
    int total_children;             /* sum of the pools' slots */
    int queue_timeout;              /* PerchildQueueTimeout, seconds */
} pc_conf_t;

/* Per-server (vhost) configuration of the module. */
typedef struct pc_server_conf_t {
    const char *user;        /* AssignUserID as written, NULL if none */
    const char *group;
    uid_t uid;
    gid_t gid;
    int pool;                /* resolved pool index */
} pc_server_conf_t;

/* State that survives restarts (in ap_pglobal). */
typedef struct pc_retained_t {
    ap_unixd_mpm_retained_data *mpm;
    int max_daemons_limit;   /* highest slot used + 1 */
    int first_server_limit;  /* scoreboard size from the first start */
    int first_thread_limit;
    apr_pool_t *lost_pool;        /* parent: pools of previous generations' */
    apr_hash_t *lost;             /*   children still finishing, by pid */
    const char **slot_labels;     /* pool label of each slot's child */
    apr_pool_t *bucket_pool;      /* parent: the listener copies of */
    ap_listen_rec **buckets;      /*   buckets 1.. (ListenCoresBuckets- */
    int nbuckets;                 /*   Ratio), kept across graceful */
    const char *bucket_sig;       /*   restarts; which listeners */
    /* Parent, across a restart: the previous generation's pool-state
     * mapping and its pools' identities, until the new configuration
     * says which of them are gone (pc_parent.c: retire_gone_pools). */
    volatile apr_uint32_t *old_down;
    apr_size_t old_down_len;
    int old_npools;
    uid_t *old_uids;
    gid_t *old_gids;
    /* The identities of the pools that took a shared listener, in this
     * generation and the one before (malloc'd; pc_pools.c): a child of
     * the earlier one may pass a connection by its configuration. */
    struct pc_ident_t *shared_cur, *shared_prev;
    int nshared_cur, nshared_prev;
    struct pc_kid_t *kids;        /* parent: pc_slots.c */
    struct pc_podgen_t *pods;     /* parent: pc_pods.c, this generation's */
    struct pc_podgen_t *old_pods; /*   pipes and the previous one's */
} pc_retained_t;

/* For deadlines a change of the wall clock must not move. */
static APR_INLINE apr_time_t pc_monotonic_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return apr_time_from_sec(ts.tv_sec) + ts.tv_nsec / 1000;
}

/* Polls 'n' entries without waiting, in slices: poll takes no more
 * entries per call than the open files limit (pc_stall.c, pc_logs.c).
 * -1 with errno set if a call fails. */
static APR_INLINE int pc_poll_now(struct pollfd *p, int n)
{
    int at;

    for (at = 0; at < n; at += 256) {
        if (poll(p + at, (nfds_t)(n - at < 256 ? n - at : 256), 0) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Closes every descriptor from 'low' up, in a helper process that must
 * keep nothing else (pc_stall.c, pc_orphan.c). */
static APR_INLINE void pc_close_from(int low)
{
    long fd, most;

    if (syscall(SYS_close_range, (unsigned)low, ~0U, 0) == 0) {
        return;
    }
    most = sysconf(_SC_OPEN_MAX);
    for (fd = low; fd < (most > 0 ? most : 65536); fd++) {
        close((int)fd);
    }
}

extern module AP_MODULE_DECLARE_DATA mpm_perchild_module;
extern pc_conf_t *pc_conf;
extern pc_retained_t *pc_retained;
extern int pc_one_process;
extern apr_pool_t *pc_pconf;

/* The pool this process serves: -1 in the parent. */
extern int pc_my_pool;

#define PC_SERVER_CONF(s) \
    ((pc_server_conf_t *)ap_get_module_config((s)->module_config, \
                                              &mpm_perchild_module))

/* pc_pools.c */
const char *pc_pools_parse_id(apr_pool_t *p, const char *user,
                              const char *group, uid_t *uid, gid_t *gid);
const char *pc_pools_add_declared(apr_pool_t *p, const char *user,
                                  const char *group, const char *count,
                                  const char *origin);
const char *pc_pools_set_dispatch(apr_pool_t *p, const char *user,
                                  const char *group, const char *count,
                                  const char *origin);
int pc_pools_resolve(apr_pool_t *p, server_rec *s, int startup);
int pc_pools_map_listeners(apr_pool_t *p, server_rec *s);
pc_pool_t *pc_pools_get(int index);
int pc_pools_pool_of_slot(int slot);
int pc_pools_accepts(int pool, const pc_listener_t *pl);
/* Did the pool with 'pool''s identity take a shared listener in the
 * generation before this one? */
int pc_pools_was_shared(int pool);
/* May a child of 'pool' have to pass a connection to 'other'?  If one
 * listener reaches both; or if 'pool' took a shared listener in the
 * generation before ('was_shared': the children of that generation pass
 * by its configuration) and 'other' takes one now. */
int pc_pools_may_pass(int pool, int other, int was_shared);
int pc_pools_takes_bucket(int pool, int slot, int bucket);
void pc_pools_close_buckets(void);
void pc_pools_log_listeners(apr_pool_t *p);
void pc_pools_log_implicit(apr_pool_t *p);
const char *pc_pools_label(const pc_pool_t *pool);
/* apache2 -S: each pool with its vhosts, on standard output. */
void pc_pools_dump(apr_pool_t *p, server_rec *s);

/* pc_parent.c */
int pc_parent_run(apr_pool_t *pconf, apr_pool_t *plog, server_rec *s);
/* Shared with the children: is the parent keeping 'pool' down (it cannot
 * start, or crashes in a loop)?  Then passing to it is pointless. */
int pc_parent_pool_down(int pool);
/* Child, right after fork: the shared pool state becomes read-only for
 * good.  Returns 0 or an errno. */
int pc_parent_child_init(void);

/* pc_slots.c: each slot's child as the parent forked it (the
 * scoreboard, writable by every child, is rewritten from it). */
void pc_slots_set(int slot, pid_t pid, ap_generation_t gen);
void pc_slots_clear(int slot);
pid_t pc_slots_pid(int slot);
ap_generation_t pc_slots_gen(int slot);
int pc_slots_find(pid_t pid);       /* its slot, or -1 */
void pc_slots_publish(void);

/* pc_child.c */
void pc_child_main(int slot, int pool) __attribute__((noreturn));
/* Has this child been told to stop (it takes no more connections or
 * records, and finishes the ones it has)? */
int pc_child_leaving(void);
/* ... and has a restart since begun a generation after its own? */
int pc_child_superseded(void);

/* pc_handoff.c */
void pc_handoff_register_hooks(apr_pool_t *p);

/* pc_logs.c */
void pc_logs_wrap(apr_pool_t *pconf);
void pc_logs_child_init(int pool);

/* pc_progs.c */
void pc_progs_register_hooks(apr_pool_t *p);
void pc_progs_child_init(int pool);

/* pc_status.c */
void pc_status_register_hooks(apr_pool_t *p);

#endif /* PERCHILD_H */
