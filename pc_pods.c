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

/* pc_pods.c: the pipes of death, one per pool, and their hand-over at a
 * graceful restart.
 *
 * worker tells its old children to stop as soon as a graceful restart
 * is asked for; the listen queue holds new connections while the parent
 * reads the configuration again and forks the new generation, which
 * takes it a few milliseconds.  perchild forks a child per tenant: with
 * a thousand tenants, reading the configuration and forking take
 * seconds, and a tenant near the end of the list had its site wait
 * that long.  So the old generation's children go on serving while the
 * configuration is read again, and each pool's are told to stop only
 * when the first new child of the same user has been forked: its site
 * waits no longer than that child takes to start.  The others (a user
 * no longer configured, a pool kept down) are told right after the new
 * generation's first round of forks.  Telling them once the new child
 * runs would shorten that wait further, but let the old configuration
 * answer after the new generation is up, which worker never does.
 *
 * If what reads the configuration next is not this build of perchild
 * (a restart into another MPM, or into a perchild whose retained data
 * differs), nothing would tell the old children: the parent's ends of
 * every generation's pipes are therefore also closed when httpd clears
 * its log pool, between reading the configuration and opening the
 * logs, unless this module's pre_config claims them first for a
 * graceful hand-over (pc_pods_claim).  Unclaimed, the old children stop
 * as worker's would.
 *
 * The pipes therefore live in a pool of their own that outlives the
 * configuration's, kept in the MPM's retained data (this module is
 * unloaded and loaded again at each restart).
 */

#include "perchild.h"
#include "pc_pods.h"
#include "http_log.h"
#include "http_main.h"
#include "apr_strings.h"

APLOG_USE_MODULE(mpm_perchild);

typedef struct pc_podgen_t {
    apr_size_t size;         /* of this struct: a build that reads another
                              * layout leaves it alone */
    apr_pool_t *pool;        /* holds the pipes: destroying it closes them */
    ap_pod_t **pods;         /* one per pool of that generation */
    uid_t *uids;             /* the pools' users, */
    gid_t *gids;             /*   groups */
    int *slots;              /*   and children */
    char *told;              /* told to stop already */
    int n;
} pc_podgen_t;

static int podgen_ours(const pc_podgen_t *g)
{
    return g != NULL && g->size == sizeof(*g);
}

/* Another build's is left as it is (its pipes close with the log pool,
 * see above). */
static void podgen_destroy(pc_podgen_t **g)
{
    if (podgen_ours(*g)) {
        apr_pool_destroy((*g)->pool);
    }
    *g = NULL;
}

/* Closes a pipe end when httpd clears its log pool: APR's own function,
 * as this module is unloaded by then. */
#define PC_FALLBACK_CLOSE ((apr_status_t (*)(void *))apr_file_close)

int pc_pods_open(apr_pool_t *plog, server_rec *s, int startup)
{
    int i, n = pc_conf->pools->nelts;
    pc_podgen_t *g;
    apr_pool_t *p;

    /* The pipes of a generation that has no children any more: the
     * first reading of the configuration, or one before a restart that
     * stopped them all. */
    podgen_destroy(&pc_retained->pods);
    if (pc_one_process) {
        return OK;
    }
    apr_pool_create(&p, ap_pglobal);
    /* The tag in the pool itself: this module's strings go at unload. */
    apr_pool_tag(p, apr_pstrdup(p, "perchild_pods"));
    g = apr_pcalloc(p, sizeof(*g));
    g->size = sizeof(*g);
    g->pool = p;
    g->n = n;
    g->pods = apr_pcalloc(p, n * sizeof(*g->pods));
    g->uids = apr_pcalloc(p, n * sizeof(*g->uids));
    g->gids = apr_pcalloc(p, n * sizeof(*g->gids));
    g->slots = apr_pcalloc(p, n * sizeof(*g->slots));
    g->told = apr_pcalloc(p, n);
    for (i = 0; i < n; i++) {
        apr_status_t rv = ap_mpm_podx_open(p, &g->pods[i]);

        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT | (startup ? APLOG_STARTUP
                                                           : 0), rv,
                         startup ? NULL : s,
                         "PC0009: could not open the pipe of death");
            apr_pool_destroy(p);
            return !OK;
        }
        g->uids[i] = pc_pools_get(i)->uid;
        g->gids[i] = pc_pools_get(i)->gid;
    }
    for (i = 0; i < n; i++) {
        apr_pool_cleanup_register(plog, g->pods[i]->pod_out,
                                  PC_FALLBACK_CLOSE, apr_pool_cleanup_null);
        apr_pool_cleanup_register(plog, g->pods[i]->pod_in,
                                  PC_FALLBACK_CLOSE, apr_pool_cleanup_null);
    }
    pc_retained->pods = g;
    return OK;
}

static void tell(pc_podgen_t *g, int i, int slots, ap_podx_restart_t mode)
{
    if (slots > 0) {
        ap_mpm_podx_killpg(g->pods[i], slots, mode);
    }
    g->told[i] = 1;
}

void pc_pods_signal(ap_podx_restart_t mode)
{
    pc_podgen_t *g = pc_retained->pods;
    int i;

    for (i = 0; podgen_ours(g) && i < g->n && i < pc_conf->pools->nelts;
         i++) {
        tell(g, i, pc_pools_get(i)->slots, mode);
    }
}

void pc_pods_keep_for_successors(void)
{
    pc_podgen_t *g = pc_retained->pods;
    int i;

    pc_pods_retire_rest();      /* a previous round not finished */
    if (!podgen_ours(g)) {
        return;
    }
    /* The children each pool has now: the configuration is still this
     * generation's. */
    for (i = 0; i < g->n && i < pc_conf->pools->nelts; i++) {
        g->slots[i] = pc_pools_get(i)->slots;
        g->told[i] = 0;
    }
    pc_retained->old_pods = g;
    pc_retained->pods = NULL;
}

void pc_pods_claim(apr_pool_t *plog, int ours)
{
    pc_podgen_t *old = pc_retained->old_pods;
    int i;

    if (!ours) {
        /* Another MPM ran since: what this module left was closed with
         * the log pool then. */
        pc_retained->pods = pc_retained->old_pods = NULL;
        return;
    }
    if (!podgen_ours(old)) {
        pc_retained->old_pods = NULL;
        return;
    }
    /* Newest first, as registered: each is then found at once. */
    for (i = old->n - 1; i >= 0; i--) {
        apr_pool_cleanup_kill(plog, old->pods[i]->pod_in, PC_FALLBACK_CLOSE);
        apr_pool_cleanup_kill(plog, old->pods[i]->pod_out,
                              PC_FALLBACK_CLOSE);
    }
}

/* The previous generation's pool of the same user as 'pool', not told
 * yet: at the same place in the list, usually, as a restart mostly adds
 * or removes a few tenants at the end; else searched. */
static int predecessor(const pc_podgen_t *old, int pool)
{
    const pc_pool_t *pl = pc_pools_get(pool);
    int i;

    if (pool < old->n && !old->told[pool] && old->uids[pool] == pl->uid
        && old->gids[pool] == pl->gid) {
        return pool;
    }
    for (i = 0; i < old->n; i++) {
        if (!old->told[i] && old->uids[i] == pl->uid
            && old->gids[i] == pl->gid) {
            return i;
        }
    }
    return -1;
}

void pc_pods_successor_started(int pool)
{
    pc_podgen_t *old = pc_retained->old_pods;
    int i;

    if (podgen_ours(old) && pool >= 0 && (i = predecessor(old, pool)) >= 0) {
        tell(old, i, old->slots[i], AP_MPM_PODX_GRACEFUL);
    }
}

void pc_pods_retire_rest(void)
{
    pc_podgen_t *old = pc_retained->old_pods;
    int i;

    for (i = 0; podgen_ours(old) && i < old->n; i++) {
        if (!old->told[i]) {
            tell(old, i, old->slots[i], AP_MPM_PODX_GRACEFUL);
        }
    }
    podgen_destroy(&pc_retained->old_pods);
}

ap_pod_t *pc_pods_child_keep(int pool)
{
    pc_podgen_t *g = pc_retained->pods;
    ap_pod_t *own = NULL;
    int i;

    /* The previous generation's: none of them is this child's. */
    podgen_destroy(&pc_retained->old_pods);
    if (g == NULL) {
        return NULL;
    }
    /* Newest first: each close unregisters its cleanup from a list that
     * APR walks from the newest entry, and the pipes were made in pool
     * order.  In pool order, a child of a host with 1000 tenants spent
     * tens of milliseconds here, and a start or graceful restart
     * seconds. */
    for (i = g->n - 1; i >= 0; i--) {
        apr_file_close(g->pods[i]->pod_out);
        if (i == pool) {
            own = g->pods[i];
        }
        else {
            apr_file_close(g->pods[i]->pod_in);
        }
    }
    return own;
}
