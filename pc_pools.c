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

/* pc_pools.c: identities, pools, and who owns which vhost and listener.
 *
 * Pool 0 always runs as User/Group and owns the main server and every
 * vhost without AssignUserID.  ChildPerUserID declares further pools;
 * an AssignUserID identity that no ChildPerUserID names gets a pool of
 * NumServers children (so an mpm-itk configuration works unchanged).
 * Scoreboard slots are laid out pool after pool, so a slot's pool never
 * changes while the configuration does not.
 */

#include "perchild.h"
#include "http_core.h"
#include "http_log.h"
#include "http_main.h"
#include "mpm_common.h"
#include "apr_strings.h"
#include "apr_lib.h"

#include <pwd.h>
#include <stdio.h>
#include <grp.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

APLOG_USE_MODULE(mpm_perchild);

/* Parses "#123" or a non-negative decimal; -1 if it is neither. */
static long parse_numeric_id(const char *arg)
{
    char *end;
    long v;

    if (arg[0] != '#' || !apr_isdigit(arg[1])) {
        return -1;
    }
    errno = 0;
    v = strtol(arg + 1, &end, 10);
    if (errno || *end || v < 0 || v > 0x7fffffffL) {
        return -1;
    }
    return v;
}

static const char *lookup_user(apr_pool_t *p, const char *user, uid_t *uid)
{
    struct passwd *pw;
    long v = parse_numeric_id(user);

    if (user[0] == '#') {
        if (v < 0) {
            return apr_psprintf(p, "'%s' is not a valid #uid", user);
        }
        *uid = (uid_t)v;
        return NULL;
    }
    /* getpwnam is fine here: configuration is read by one thread. */
    errno = 0;
    pw = getpwnam(user);
    if (pw == NULL) {
        return apr_psprintf(p, "unknown user '%s'", user);
    }
    *uid = pw->pw_uid;
    return NULL;
}

static const char *lookup_group(apr_pool_t *p, const char *group, gid_t *gid)
{
    struct group *gr;
    long v = parse_numeric_id(group);

    if (group[0] == '#') {
        if (v < 0) {
            return apr_psprintf(p, "'%s' is not a valid #gid", group);
        }
        *gid = (gid_t)v;
        return NULL;
    }
    gr = getgrnam(group);
    if (gr == NULL) {
        return apr_psprintf(p, "unknown group '%s'", group);
    }
    *gid = gr->gr_gid;
    return NULL;
}

/* Resolves a user and group as the User and Group directives do and
 * refuses root: a pool running as uid or gid 0 would undo the point of
 * the module.  Returns an error message or NULL. */
const char *pc_pools_parse_id(apr_pool_t *p, const char *user,
                              const char *group, uid_t *uid, gid_t *gid)
{
    const char *err;

    if ((err = lookup_user(p, user, uid)) != NULL
        || (err = lookup_group(p, group, gid)) != NULL) {
        return err;
    }
    if (*uid == 0) {
        return apr_psprintf(p, "user '%s' is uid 0; perchild never serves "
                            "requests as root", user);
    }
    if (*gid == 0) {
        return apr_psprintf(p, "group '%s' is gid 0; perchild never serves "
                            "requests as root's group", group);
    }
    return NULL;
}

static pc_pool_t *find_pool(apr_array_header_t *arr, uid_t uid, gid_t gid)
{
    int i;

    for (i = 0; i < arr->nelts; i++) {
        pc_pool_t *pl = &APR_ARRAY_IDX(arr, i, pc_pool_t);
        if (pl->uid == uid && pl->gid == gid) {
            return pl;
        }
    }
    return NULL;
}

static pc_pool_t *append_pool(apr_array_header_t *arr, apr_pool_t *p,
                              uid_t uid, gid_t gid, const char *user,
                              const char *group)
{
    pc_pool_t *pl = apr_array_push(arr);

    memset(pl, 0, sizeof(*pl));
    pl->index = arr->nelts - 1;
    pl->uid = uid;
    pl->gid = gid;
    pl->user_name = apr_pstrdup(p, user);
    pl->group_name = apr_pstrdup(p, group);
    pl->label = apr_pstrcat(p, user, ":", group, NULL);
    return pl;
}

/* Optional num-children: 0 when absent (the pool takes NumServers). */
static const char *parse_count(apr_pool_t *p, const char *count, int *n)
{
    char *end;
    long v;

    *n = 0;
    if (count == NULL) {
        return NULL;
    }
    v = strtol(count, &end, 10);
    if (!*count || *end || v < 1 || v > PC_MAX_SERVER_LIMIT) {
        return apr_psprintf(p, "num-children '%s' must be a whole number "
                            "from 1 to %d", count, PC_MAX_SERVER_LIMIT);
    }
    *n = (int)v;
    return NULL;
}

/* ChildPerUserID user group [num-children].  Only stores; sizes and
 * the default pool are settled in pc_pools_resolve. */
const char *pc_pools_add_declared(apr_pool_t *p, const char *user,
                                  const char *group, const char *count,
                                  const char *origin)
{
    uid_t uid;
    gid_t gid;
    const char *err;
    pc_pool_t *pl, *dup;
    int n;

    if ((err = pc_pools_parse_id(p, user, group, &uid, &gid)) != NULL
        || (err = parse_count(p, count, &n)) != NULL) {
        return err;
    }
    dup = find_pool(pc_conf->declared, uid, gid);
    if (dup != NULL) {
        return apr_psprintf(p, "%s %s is already declared (%s)", user,
                            group, dup->origin);
    }
    pl = append_pool(pc_conf->declared, p, uid, gid, user, group);
    pl->num_children = n;
    pl->from_directive = 1;
    pl->origin = apr_pstrdup(p, origin);
    return NULL;
}

/* DispatchUserID user group [num-children]: a pool that accepts the
 * shared listeners and passes every request on. */
const char *pc_pools_set_dispatch(apr_pool_t *p, const char *user,
                                  const char *group, const char *count,
                                  const char *origin)
{
    uid_t uid;
    gid_t gid;
    const char *err;
    apr_array_header_t *one;
    pc_pool_t *pl;
    int n;

    if (pc_conf->dispatch_decl != NULL) {
        return apr_psprintf(p, "already set (%s)",
                            pc_conf->dispatch_decl->origin);
    }
    if ((err = pc_pools_parse_id(p, user, group, &uid, &gid)) != NULL
        || (err = parse_count(p, count, &n)) != NULL) {
        return err;
    }
    one = apr_array_make(p, 1, sizeof(pc_pool_t));
    pl = append_pool(one, p, uid, gid, user, group);
    pl->num_children = n;
    pl->dispatch = 1;
    pl->origin = apr_pstrdup(p, origin);
    pc_conf->dispatch_decl = pl;
    return NULL;
}

/* Does 'd' share a uid or a gid with a serving pool?  Either would give
 * the dispatcher a tenant's file access, or a tenant the dispatcher's. */
static int shares_identity(const pc_pool_t *d)
{
    int i;

    for (i = 0; i < pc_conf->pools->nelts; i++) {
        pc_pool_t *pl = pc_pools_get(i);
        if (pl->uid == d->uid || pl->gid == d->gid) {
            return 1;
        }
    }
    return 0;
}

/* The dispatch pool must be nobody else: it reads every tenant's
 * requests, and no tenant may. */
static int add_dispatch_pool(apr_pool_t *p)
{
    pc_pool_t *d = pc_conf->dispatch_decl, *pl;

    pc_conf->dispatch_pool = -1;
    if (d == NULL) {
        return OK;
    }
    if (shares_identity(d)) {
        ap_log_error(APLOG_MARK, APLOG_EMERG | APLOG_STARTUP, 0, NULL,
                     "PC0104: DispatchUserID %s %s shares its user or its "
                     "group with a serving pool (User/Group, ChildPerUserID "
                     "or AssignUserID): give the dispatch pool a user and "
                     "a group of its own", d->user_name, d->group_name);
        return !OK;
    }
    pl = append_pool(pc_conf->pools, p, d->uid, d->gid, d->user_name,
                     d->group_name);
    pl->num_children = d->num_children ? d->num_children
                                       : pc_conf->num_servers;
    pl->dispatch = 1;
    pl->origin = d->origin;
    pc_conf->dispatch_pool = pl->index;
    return OK;
}

pc_pool_t *pc_pools_get(int index)
{
    if (index < 0 || index >= pc_conf->pools->nelts) {
        return NULL;
    }
    return &APR_ARRAY_IDX(pc_conf->pools, index, pc_pool_t);
}

const char *pc_pools_label(const pc_pool_t *pool)
{
    return pool ? pool->label : "-";
}

/* httpd reads its configuration twice at start: a notice said in the
 * first pass need not be said again. */
static int second_startup_pass(void)
{
    return ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_CONFIG
           && ap_state_query(AP_SQ_CONFIG_GEN) == 0;
}

/* Beyond this many implicit pools, one line names them all. */
#define PC_IMPLICIT_LINES 3

static int implicit(const pc_pool_t *pl)
{
    return pl->first_vhost != NULL;
}

/* Says which AssignUserID identities got an implicit pool: a line each
 * (with the first vhost that names it) for a few, one line for many (a
 * host moved from mpm-itk may have hundreds, and each apache2 -t would
 * print them all).  'level' may carry APLOG_STARTUP (the terminal). */
static void log_implicit_pools(apr_pool_t *p, int level)
{
    int i, n = pc_conf->pools->nelts, count = 0, named = 0;
    const char *names = "";

    for (i = 0; i < n; i++) {
        count += implicit(pc_pools_get(i));
    }
    /* Implicit pools come in the reverse of the configuration's order
     * (as httpd lists vhosts): name them in its order. */
    for (i = n - 1; i >= 0; i--) {
        const pc_pool_t *pl = pc_pools_get(i);
        const server_rec *vs = pl->first_vhost;

        if (!implicit(pl)) {
            continue;
        }
        if (count <= PC_IMPLICIT_LINES) {
            /* The main error log, not the tenant vhost's. */
            ap_log_error(APLOG_MARK, level, 0, ap_server_conf,
                         "PC0102: AssignUserID %s %s (vhost %s) has no "
                         "ChildPerUserID: giving it an implicit pool of %d "
                         "child(ren) (NumServers)", pl->user_name,
                         pl->group_name, vs->server_hostname
                         ? vs->server_hostname : "?", pl->num_children);
        }
        else if (named++ < 10) {
            names = apr_pstrcat(p, names, named > 1 ? ", " : "", pl->label,
                                NULL);
        }
    }
    if (count > PC_IMPLICIT_LINES) {
        ap_log_error(APLOG_MARK, level, 0, ap_server_conf,
                     "PC0102: %d AssignUserID identities have no "
                     "ChildPerUserID and get implicit pools of %d "
                     "child(ren) (NumServers): %s%s", count,
                     pc_conf->num_servers, names,
                     count > 10 ? ", ..." : "");
    }
}

/* A configuration without any AssignUserID runs every site as User/Group.
 * The likeliest cause is a host moved from mpm-itk whose vhosts wrap
 * AssignUserID in <IfModule mpm_itk_module> (as control panels write
 * them): httpd skips those blocks before perchild sees them. */
static void log_no_assignment(server_rec *s, int level)
{
    server_rec *vs;

    for (vs = s; vs != NULL; vs = vs->next) {
        if (PC_SERVER_CONF(vs)->user != NULL) {
            return;
        }
    }
    ap_log_error(APLOG_MARK, level, 0, ap_server_conf,
                 "PC0109: no virtual host has AssignUserID: every site is "
                 "served as %s (an AssignUserID inside <IfModule "
                 "mpm_itk_module> or <IfModule mpm_itk.c> is skipped: "
                 "remove the <IfModule> around it)",
                 pc_pools_label(pc_pools_get(0)));
}

/* For the error log, once it is open (each generation). */
void pc_pools_log_implicit(apr_pool_t *p)
{
    log_implicit_pools(p, APLOG_NOTICE);
    log_no_assignment(ap_server_conf, APLOG_NOTICE);
}

/* Gives every vhost with AssignUserID its pool, creating implicit pools
 * for identities no ChildPerUserID declared. */
static void assign_vhosts(apr_pool_t *p, server_rec *s, int startup)
{
    server_rec *vs;
    int declared = pc_conf->pools->nelts;

    for (vs = s; vs != NULL; vs = vs->next) {
        pc_server_conf_t *sc = PC_SERVER_CONF(vs);
        pc_pool_t *pl;

        sc->pool = 0;
        if (sc->user == NULL) {
            continue;
        }
        pl = find_pool(pc_conf->pools, sc->uid, sc->gid);
        if (pl == NULL) {
            pl = append_pool(pc_conf->pools, p, sc->uid, sc->gid,
                             sc->user, sc->group);
            pl->num_children = pc_conf->num_servers;
        }
        if (pl->index >= declared) {
            /* httpd lists vhosts last first: the last seen is the
             * first in the configuration. */
            pl->first_vhost = vs;
            pl->origin = apr_psprintf(p, "AssignUserID in vhost %s:%d",
                                      vs->defn_name ? vs->defn_name : "?",
                                      vs->defn_line_number);
        }
        sc->pool = pl->index;
    }
    /* On the terminal of the first pass (apache2 -t, -S, -k start); the
     * error log gets it when it opens (pc_parent.c). */
    if (startup && !second_startup_pass()) {
        log_implicit_pools(p, APLOG_NOTICE | APLOG_STARTUP);
        log_no_assignment(s, APLOG_NOTICE | APLOG_STARTUP);
    }
}

/* The pool's supplementary groups, as initgroups() would set them.
 * Resolved here, in the parent, once per configuration: a child that
 * called initgroups() itself would load the NSS modules (about 1.3 MiB
 * of private memory per child). */
static void resolve_groups(apr_pool_t *p, pc_pool_t *pl)
{
    const char *name = pl->user_name;
    int n = 32;

    if (name[0] == '#') {
        struct passwd *pw = getpwuid(pl->uid);
        name = pw ? apr_pstrdup(p, pw->pw_name) : NULL;
    }
    if (name != NULL) {
        for (;;) {
            gid_t *g = apr_palloc(p, n * sizeof(gid_t));
            int want = n;

            if (getgrouplist(name, pl->gid, g, &want) != -1) {
                pl->groups = g;
                pl->ngroups = want;
                return;
            }
            if (want <= n || want > 65536) {
                break;
            }
            n = want;
        }
    }
    /* No passwd entry (a bare #uid): its primary group only. */
    pl->groups = apr_palloc(p, sizeof(gid_t));
    pl->groups[0] = pl->gid;
    pl->ngroups = 1;
}

/* One more child for each pool that wants more, the dispatch pool
 * first (without it no shared port is accepted at all).  Returns how
 * many were given. */
static int share_round(int *left)
{
    int i, n = pc_conf->pools->nelts, given = 0;

    for (i = -1; i < n && *left > 0; i++) {
        int idx = i < 0 ? pc_conf->dispatch_pool : i;
        pc_pool_t *pl;

        if (idx < 0 || (i >= 0 && idx == pc_conf->dispatch_pool)) {
            continue;
        }
        pl = pc_pools_get(idx);
        if (pl->slots < pl->num_children) {
            pl->slots++;
            (*left)--;
            given++;
        }
    }
    return given;
}

/* Lays the pools' children out on scoreboard slots.  Returns the number
 * of children wanted (which may exceed what fits).  When they do not
 * fit (a restart that adds pools to a full scoreboard), every pool gets
 * a share, one child each first: a site that was being served is not
 * dropped so that a new pool gets all the children it asked for. */
static int layout_slots(int limit)
{
    int i, next = 0, wanted = 0, left = limit;

    for (i = 0; i < pc_conf->pools->nelts; i++) {
        pc_pool_t *pl = pc_pools_get(i);

        wanted += pl->num_children;
        pl->slots = 0;
    }
    if (wanted <= limit) {
        for (i = 0; i < pc_conf->pools->nelts; i++) {
            pc_pool_t *pl = pc_pools_get(i);
            pl->slots = pl->num_children;
        }
    }
    else {
        while (left > 0 && share_round(&left) > 0) {
            ;
        }
    }
    for (i = 0; i < pc_conf->pools->nelts; i++) {
        pc_pool_t *pl = pc_pools_get(i);

        pl->first_slot = next;
        next += pl->slots;
    }
    pc_conf->total_children = next;
    return wanted;
}

/* The first few short pools by name, the rest in one line: a graceful
 * restart that adds hundreds of tenants past the limit would otherwise
 * log a line for each. */
#define PC_SHORT_POOLS_NAMED 5

static void log_short_pools(server_rec *s)
{
    int i, shown = 0, more = 0, more_none = 0;

    for (i = 0; i < pc_conf->pools->nelts; i++) {
        pc_pool_t *pl = pc_pools_get(i);

        if (pl->slots >= pl->num_children) {
            continue;
        }
        if (shown++ < PC_SHORT_POOLS_NAMED) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                         "PC0106: pool %s gets %d of its %d children: "
                         "ServerLimit %d is full until a full restart",
                         pl->label, pl->slots, pl->num_children,
                         pc_conf->server_limit);
            continue;
        }
        more++;
        more_none += pl->slots == 0;
    }
    if (more > 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "PC0106: %d more pools get fewer children than "
                     "configured, %d of them none (their vhosts get 503): "
                     "ServerLimit %d is full until a full restart",
                     more, more_none, pc_conf->server_limit);
    }
}

/* How many vhosts (the main server counted) pool 'pool' serves. */
static int vhosts_of(server_rec *s, int pool)
{
    server_rec *vs;
    int n = 0;

    for (vs = s; vs != NULL; vs = vs->next) {
        n += PC_SERVER_CONF(vs)->pool == pool;
    }
    return n;
}

/* A ChildPerUserID that no AssignUserID names runs children that serve
 * nothing of their own (a typo in one of the two, most likely). */
static void warn_unused_pools(server_rec *s, int startup)
{
    int i;

    if (second_startup_pass()) {
        return;
    }
    for (i = 1; i < pc_conf->pools->nelts; i++) {
        const pc_pool_t *pl = pc_pools_get(i);

        if (pl->from_directive && vhosts_of(s, i) == 0) {
            ap_log_error(APLOG_MARK, APLOG_WARNING
                         | (startup ? APLOG_STARTUP : 0), 0, s,
                         "PC0108: ChildPerUserID %s %s (%s): no vhost has "
                         "AssignUserID %s %s, so its children serve no site "
                         "of their own", pl->user_name, pl->group_name,
                         pl->origin ? pl->origin : "?", pl->user_name,
                         pl->group_name);
        }
    }
}

/* PerchildDispatchAll only says who accepts when there is a dispatch
 * pool; alone it does nothing, which an admin who set it should know. */
static void warn_dispatch_all_alone(server_rec *s, int startup)
{
    if (second_startup_pass() || !pc_conf->dispatch_all
        || pc_conf->dispatch_decl != NULL) {
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_WARNING | (startup ? APLOG_STARTUP : 0),
                 0, s, "PC0118: PerchildDispatchAll On has no effect "
                 "without DispatchUserID: each pool's children accept its "
                 "listeners");
}

/* The most vhost names listed per pool by pc_pools_dump. */
#define PC_DUMP_NAMES 8

/* The vhosts of 'pool', in the configuration's order, for -S. */
static const char *vhost_names(apr_pool_t *p, server_rec *s, int pool)
{
    apr_array_header_t *all = apr_array_make(p, 16, sizeof(server_rec *));
    apr_hash_t *seen = apr_hash_make(p);
    const char *names = "";
    server_rec *vs;
    int i, n = 0;

    for (vs = s->next; vs != NULL; vs = vs->next) {
        if (PC_SERVER_CONF(vs)->pool == pool) {
            APR_ARRAY_PUSH(all, server_rec *) = vs;
        }
    }
    /* The same name on two ports (http and https) is said once. */
    for (i = 0; i < all->nelts; i++) {
        vs = APR_ARRAY_IDX(all, i, server_rec *);
        if (vs->server_hostname != NULL) {
            apr_hash_set(seen, vs->server_hostname, APR_HASH_KEY_STRING,
                         vs);
        }
    }
    if (PC_SERVER_CONF(s)->pool == pool) {
        names = "main server";
        n++;
    }
    /* httpd lists vhosts last first. */
    for (i = all->nelts - 1; i >= 0; i--) {
        vs = APR_ARRAY_IDX(all, i, server_rec *);
        if (vs->server_hostname != NULL
            && apr_hash_get(seen, vs->server_hostname, APR_HASH_KEY_STRING)
               != vs) {
            continue;     /* another vhost of that name comes first */
        }
        if (n++ < PC_DUMP_NAMES) {
            names = apr_pstrcat(p, names, n > 1 ? ", " : "",
                                vs->server_hostname ? vs->server_hostname
                                                    : "?", NULL);
        }
    }
    if (n > PC_DUMP_NAMES) {
        names = apr_psprintf(p, "%s, ... (%d in all)", names, n);
    }
    return n > 0 ? names : "(no vhost)";
}

static void dump_pool(apr_pool_t *p, server_rec *s, int i)
{
    const pc_pool_t *pl = pc_pools_get(i);

    printf("    %-24s %4d %-9s %s: %s\n", pl->label, pl->num_children,
           pl->num_children == 1 ? "child" : "children",
           pl->dispatch ? "dispatch" : i == 0 ? "User/Group"
           : pl->from_directive ? "ChildPerUserID" : "implicit",
           pl->dispatch ? "accepts shared ports, serves no site"
           : vhost_names(p, s, i));
}

void pc_pools_dump(apr_pool_t *p, server_rec *s)
{
    int i, n = pc_conf->pools->nelts;

    printf("perchild pools:\n");
    /* User/Group and the declared pools, then the implicit ones in the
     * configuration's order (they were made last vhost first), then the
     * dispatch pool. */
    for (i = 0; i < n; i++) {
        const pc_pool_t *pl = pc_pools_get(i);
        if (i == 0 || (pl->from_directive && !pl->dispatch)) {
            dump_pool(p, s, i);
        }
    }
    for (i = n - 1; i > 0; i--) {
        const pc_pool_t *pl = pc_pools_get(i);
        if (!pl->from_directive && !pl->dispatch) {
            dump_pool(p, s, i);
        }
    }
    for (i = 0; i < n; i++) {
        if (pc_pools_get(i)->dispatch) {
            dump_pool(p, s, i);
        }
    }
    /* httpd writes its own lines unbuffered: keep the order. */
    fflush(stdout);
}

/* Settles pools, their sizes and slots, and every vhost's pool.
 * At first start (and at -t) a configuration that does not fit is
 * refused; at a restart the scoreboard cannot grow, so what does not
 * fit is logged and left out. */
int pc_pools_resolve(apr_pool_t *p, server_rec *s, int startup)
{
    int i, wanted;
    pc_pool_t *def;

    def = append_pool(pc_conf->pools, p, ap_unixd_config.user_id,
                      ap_unixd_config.group_id,
                      ap_unixd_config.user_name ?
                          ap_unixd_config.user_name : "#-1",
                      ap_unixd_config.group_name ?
                          ap_unixd_config.group_name : "#-1");
    def->num_children = pc_conf->num_servers;
    def->origin = "User/Group";
    if (def->uid == (uid_t)-1 || def->gid == (gid_t)-1 || def->uid == 0
        || def->gid == 0) {
        /* Its children would fail to start, or run as root. */
        ap_log_error(APLOG_MARK, APLOG_EMERG | APLOG_STARTUP, 0, NULL,
                     "PC0101: User %s / Group %s cannot run a pool: set "
                     "User and Group to an unprivileged user and group "
                     "(the pool of the main server and of vhosts without "
                     "AssignUserID)", def->user_name, def->group_name);
        return !OK;
    }

    for (i = 0; i < pc_conf->declared->nelts; i++) {
        pc_pool_t *d = &APR_ARRAY_IDX(pc_conf->declared, i, pc_pool_t);
        pc_pool_t *pl = find_pool(pc_conf->pools, d->uid, d->gid);

        if (pl == NULL) {
            pl = append_pool(pc_conf->pools, p, d->uid, d->gid,
                             d->user_name, d->group_name);
            pl->origin = d->origin;
        }
        pl->from_directive = 1;
        pl->num_children = d->num_children ? d->num_children
                                           : pc_conf->num_servers;
    }
    assign_vhosts(p, s, startup);
    warn_unused_pools(s, startup);
    warn_dispatch_all_alone(s, startup);
    if (add_dispatch_pool(p) != OK) {
        return !OK;
    }
    for (i = 0; i < pc_conf->pools->nelts; i++) {
        resolve_groups(p, pc_pools_get(i));
    }

    if (!startup) {
        wanted = layout_slots(pc_conf->server_limit);
        if (wanted > pc_conf->server_limit) {
            log_short_pools(s);
        }
        return OK;
    }
    wanted = layout_slots(PC_MAX_SERVER_LIMIT);
    if (wanted > PC_MAX_SERVER_LIMIT) {
        ap_log_error(APLOG_MARK, APLOG_EMERG | APLOG_STARTUP, 0, NULL,
                     "PC0107: ChildPerUserID, DispatchUserID, AssignUserID "
                     "and NumServers ask for %d children, more than the %d "
                     "a server can run: lower the pools' sizes", wanted,
                     PC_MAX_SERVER_LIMIT);
        return !OK;
    }
    if (!pc_conf->server_limit_set) {
        /* Room for pools a graceful restart adds (the scoreboard keeps
         * its first size until a full stop): a quarter more, at least
         * 16, within the maximum. */
        int room = wanted / 4 > PC_MIN_SERVER_LIMIT ? wanted / 4
                                                    : PC_MIN_SERVER_LIMIT;

        pc_conf->server_limit = wanted + room < PC_MAX_SERVER_LIMIT
                                ? wanted + room : PC_MAX_SERVER_LIMIT;
    }
    if (wanted > pc_conf->server_limit) {
        ap_log_error(APLOG_MARK, APLOG_EMERG | APLOG_STARTUP, 0, NULL,
                     "PC0103: ServerLimit %d is less than the %d children "
                     "that ChildPerUserID, DispatchUserID, AssignUserID and "
                     "NumServers ask for: raise ServerLimit or lower the "
                     "pools' sizes",
                     pc_conf->server_limit, wanted);
        return !OK;
    }
    return OK;
}

/* A binary search: the parent asks for every slot on every tick, and a
 * host may have thousands of pools.  Pools lie on the slots in order
 * (layout_slots), so the pool holding 'slot' is the last one starting
 * at or before it; a pool without slots starts where the next begins. */
int pc_pools_pool_of_slot(int slot)
{
    int lo = 0, hi = pc_conf->pools->nelts - 1, found = -1;
    pc_pool_t *pl;

    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;

        if (pc_pools_get(mid)->first_slot <= slot) {
            found = mid;
            lo = mid + 1;
        }
        else {
            hi = mid - 1;
        }
    }
    if (found < 0 || slot < 0) {
        return -1;
    }
    pl = pc_pools_get(found);
    return slot < pl->first_slot + pl->slots ? found : -1;
}

/* Does a vhost address cover a listener?  'all' is set when it takes
 * every connection of that listener (so the main server takes none). */
static int addr_covers(const server_addr_rec *sar, const ap_listen_rec *lr,
                       int *all)
{
    apr_sockaddr_t *la = lr->bind_addr;
    int vwild = apr_sockaddr_is_wildcard(sar->host_addr);
    int lwild = apr_sockaddr_is_wildcard(la);

    *all = 0;
    if (sar->host_port != 0 && sar->host_port != la->port) {
        return 0;
    }
    if (vwild) {
        *all = 1;
        return 1;
    }
    if (apr_sockaddr_equal(sar->host_addr, la)) {
        *all = !lwild;
        return 1;
    }
    /* A wildcard listener also takes connections to the vhost's IP. */
    return lwild;
}

/* How 'sar' names the address of 'lr', a listener bound to one: 2 with
 * its port, 1 with any port ("IP:*"), 0 not at all. */
static int addr_is(const server_addr_rec *sar, const ap_listen_rec *lr)
{
    if (apr_sockaddr_is_wildcard(sar->host_addr)
        || !apr_sockaddr_equal(sar->host_addr, lr->bind_addr)) {
        return 0;
    }
    return sar->host_port == lr->bind_addr->port ? 2
           : sar->host_port == 0 ? 1 : 0;
}

/* Do vhosts name the exact address of 'lr'?  Then httpd picks among
 * those vhosts only, for every connection on it (vhost.c looks the
 * address up before the *:port vhosts: with its port first, else with
 * any port).  Returns how they name it (see addr_is), 0 if none does. */
static int has_exact_vhost(server_rec *s, ap_listen_rec *lr)
{
    server_rec *vs;
    server_addr_rec *sar;
    int best = 0;

    if (apr_sockaddr_is_wildcard(lr->bind_addr)) {
        return 0;
    }
    for (vs = s->next; vs != NULL; vs = vs->next) {
        for (sar = vs->addrs; sar != NULL; sar = sar->next) {
            int how = addr_is(sar, lr);
            best = how > best ? how : best;
        }
    }
    return best;
}

/* Marks in 'in' (one byte per pool) the pools whose vhosts httpd may
 * choose for a connection on 'lr', the main server's among them unless
 * vhosts cover the address entirely.  Returns the pool if there is just
 * one, else -1. */
static int listener_owner(server_rec *s, ap_listen_rec *lr, unsigned char *in)
{
    server_rec *vs;
    int exact = has_exact_vhost(s, lr);
    int owner = -2, main_excluded = exact;

    for (vs = s->next; vs != NULL; vs = vs->next) {
        server_addr_rec *sar;
        int hit = 0;

        for (sar = vs->addrs; sar != NULL; sar = sar->next) {
            int all;
            if (exact ? addr_is(sar, lr) == exact
                      : addr_covers(sar, lr, &all)) {
                hit = 1;
                main_excluded |= exact || all;
            }
        }
        if (hit) {
            int pool = PC_SERVER_CONF(vs)->pool;
            in[pool] = 1;
            owner = owner == -2 || owner == pool ? pool : -1;
        }
    }
    if (!main_excluded) {
        int pool = PC_SERVER_CONF(s)->pool;
        in[pool] = 1;
        owner = owner == -2 || owner == pool ? pool : -1;
    }
    return owner;
}

static int dispatch_takes_all(const pc_listener_t *pl);

/* Who accepts 'pl', in words for the log: the pools of a shared one
 * by label, the first few of them. */
static const char *acceptors(apr_pool_t *p, const pc_listener_t *pl)
{
    const char *list = NULL;
    int i, n = 0;

    if (dispatch_takes_all(pl)
        || (pl->owner < 0 && pc_conf->dispatch_pool >= 0)) {
        return apr_pstrcat(p, "the dispatch pool ",
                           pc_pools_get(pc_conf->dispatch_pool)->label,
                           NULL);
    }
    if (pl->owner >= 0) {
        return apr_pstrcat(p, "pool ", pc_pools_get(pl->owner)->label,
                           NULL);
    }
    for (i = 0; i < pc_conf->pools->nelts; i++) {
        if (pl->takers[i] && ++n <= 8) {
            const char *label = pc_pools_get(i)->label;
            list = list ? apr_pstrcat(p, list, ", ", label, NULL) : label;
        }
    }
    return apr_psprintf(p, "%d pools (%s%s)", n, list ? list : "",
                        n > 8 ? ", ..." : "");
}

/* The listeners as "ip:port/protocol;..." in order: the copies made for
 * them can serve another generation only if this is unchanged. */
static const char *listeners_sig(apr_pool_t *p)
{
    const char *sig = "";
    ap_listen_rec *lr;

    for (lr = ap_listeners; lr != NULL; lr = lr->next) {
        char *ip = NULL;

        apr_sockaddr_ip_get(&ip, lr->bind_addr);
        sig = apr_psprintf(p, "%s%s:%u/%s;", sig, ip ? ip : "?",
                           (unsigned)lr->bind_addr->port,
                           lr->protocol ? lr->protocol : "");
    }
    return sig;
}

/* Makes this generation's copies in a pool of their own that outlives
 * it, then lets the previous ones go. */
static int make_buckets(server_rec *s, const char *sig, int nb)
{
    apr_pool_t *bp, *old = pc_retained->bucket_pool;
    ap_listen_rec **made;
    apr_status_t rv;

    apr_pool_create(&bp, ap_pglobal);
    apr_pool_tag(bp, "perchild_buckets");
    rv = ap_duplicate_listeners(bp, s, &made, &nb);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "PC0111: cannot make the listener buckets that "
                     "ListenCoresBucketsRatio asks for");
        apr_pool_destroy(bp);
        return -1;
    }
    pc_retained->bucket_pool = bp;
    pc_retained->buckets = made;
    pc_retained->nbuckets = nb;
    pc_retained->bucket_sig = apr_pstrdup(bp, sig);
    if (old != NULL) {
        apr_pool_destroy(old);
    }
    return nb;
}

/* ListenCoresBucketsRatio, as in worker and event: every listener gets
 * copies bound with SO_REUSEPORT, and the kernel spreads new connections
 * over them.  Unlike worker, a graceful restart keeps the copies of
 * buckets 1.. (httpd keeps bucket 0, the listeners themselves), so no
 * connection waiting in their accept queues is lost; they are made anew
 * at a full restart or when the listeners change.  Fills 'buckets'
 * (allocated in p) and returns their number, or -1. */
static int listener_buckets(apr_pool_t *p, server_rec *s,
                            ap_listen_rec ***buckets)
{
    const char *sig = listeners_sig(p);
    int b, nb;

    if (pc_one_process) {
        nb = 1;
        *buckets = apr_pcalloc(p, sizeof(**buckets));
        (*buckets)[0] = ap_listeners;
        return nb;
    }
    if (!pc_retained->mpm->was_graceful || pc_retained->buckets == NULL
        || strcmp(sig, pc_retained->bucket_sig) != 0) {
        nb = pc_retained->mpm->was_graceful ? pc_retained->nbuckets : 0;
        if ((nb = make_buckets(s, sig, nb)) < 1) {
            return -1;
        }
    }
    nb = pc_retained->nbuckets;
    *buckets = apr_pcalloc(p, nb * sizeof(**buckets));
    (*buckets)[0] = ap_listeners;
    for (b = 1; b < nb; b++) {
        (*buckets)[b] = pc_retained->buckets[b];
    }
    return nb;
}

/* The parent's copies of buckets 1.. (httpd's ap_close_listeners only
 * knows them in a generation that made them). */
void pc_pools_close_buckets(void)
{
    int b;

    for (b = 1; b < pc_retained->nbuckets && pc_retained->buckets; b++) {
        ap_close_listeners_ex(pc_retained->buckets[b]);
    }
}

/* The options httpd (make_sock) may have set on a listener, carried over
 * to its replacement. */
static const int listener_opts[][2] = {
    { SOL_SOCKET, SO_REUSEADDR }, { SOL_SOCKET, SO_REUSEPORT },
    { SOL_SOCKET, SO_KEEPALIVE }, { IPPROTO_TCP, TCP_NODELAY },
    { IPPROTO_TCP, TCP_DEFER_ACCEPT }, { IPPROTO_IP, IP_FREEBIND },
};

/* A new listening socket like 'old' (same address and options), or -1.
 * httpd keeps ListenBacklog to itself: the replacement gets httpd's
 * default backlog. */
static int listening_copy(int old)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    unsigned i;
    int fd, v;

    if (getsockname(old, (struct sockaddr *)&ss, &len) != 0
        || (fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
        return -1;
    }
    for (i = 0; i < sizeof(listener_opts) / sizeof(listener_opts[0]); i++) {
        socklen_t vlen = sizeof(v);
        int level = listener_opts[i][0];

        if (level == IPPROTO_IP && ss.ss_family == AF_INET6) {
            continue;
        }
        if (getsockopt(old, level, listener_opts[i][1], &v, &vlen) == 0
            && v != 0) {
            setsockopt(fd, level, listener_opts[i][1], &v, sizeof(v));
        }
    }
    if (ss.ss_family == AF_INET6) {
        socklen_t vlen = sizeof(v);
        if (getsockopt(old, IPPROTO_IPV6, IPV6_V6ONLY, &v, &vlen) == 0) {
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof(v));
        }
    }
    if (bind(fd, (struct sockaddr *)&ss, len) != 0
        || listen(fd, DEFAULT_LISTENBACKLOG) != 0) {
        int err = errno;        /* for the caller's log line */

        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

/* Any process holding a listener (the children of every pool that
 * accepts it, tenants' code included) can shut it down, which stops it
 * listening for everyone; httpd keeps listeners across restarts as they
 * are.  So each generation checks them, and replaces a dead one under
 * the same descriptor number (the same apr_socket_t): the next
 * generation's children accept again. */
static void heal_listener(server_rec *s, ap_listen_rec *lr)
{
    apr_os_sock_t fd;
    int on = 0, fresh;
    socklen_t len = sizeof(on);
    char *addr = NULL;

    if (apr_os_sock_get(&fd, lr->sd) != APR_SUCCESS || fd < 0
        || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) != 0
        || on) {
        return;
    }
    apr_sockaddr_ip_get(&addr, lr->bind_addr);
    fresh = listening_copy(fd);
    if (fresh < 0 || dup3(fresh, fd, O_CLOEXEC) < 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, errno, s,
                     "PC0113: listener %s:%u stopped listening and cannot "
                     "be replaced; a full stop and start will",
                     addr ? addr : "?", (unsigned)lr->bind_addr->port);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "PC0112: listener %s:%u had stopped listening (shut "
                     "down by a process holding it); replaced",
                     addr ? addr : "?", (unsigned)lr->bind_addr->port);
    }
    if (fresh >= 0) {
        close(fresh);
    }
}

/* Does a shared listener reach 'pool', and also 'other' (-1: any)? */
static int shared_taker(int pool, int other)
{
    int i;

    for (i = 0; i < pc_conf->listeners->nelts; i++) {
        const pc_listener_t *pl = &APR_ARRAY_IDX(pc_conf->listeners, i,
                                                 pc_listener_t);
        if (pl->bucket == 0 && pl->owner < 0 && pl->takers[pool]
            && (other < 0 || pl->takers[other])) {
            return 1;
        }
    }
    return 0;
}

struct pc_ident_t {
    uid_t uid;
    gid_t gid;
};

/* Parent, once the listeners are mapped: this generation's identities
 * become the previous one's. */
static void remember_shared_takers(void)
{
    int i, n = 0, npools = pc_conf->pools->nelts;
    struct pc_ident_t *cur = malloc((npools + 1) * sizeof(*cur));

    if (cur == NULL) {
        return;                   /* the allowance is only a courtesy */
    }
    for (i = 0; i < npools; i++) {
        if (shared_taker(i, -1)) {
            cur[n].uid = pc_pools_get(i)->uid;
            cur[n++].gid = pc_pools_get(i)->gid;
        }
    }
    free(pc_retained->shared_prev);
    pc_retained->shared_prev = pc_retained->shared_cur;
    pc_retained->nshared_prev = pc_retained->nshared_cur;
    pc_retained->shared_cur = cur;
    pc_retained->nshared_cur = n;
}

int pc_pools_was_shared(int pool)
{
    const pc_pool_t *pl = pc_pools_get(pool);
    int i;

    for (i = 0; i < pc_retained->nshared_prev; i++) {
        if (pc_retained->shared_prev[i].uid == pl->uid
            && pc_retained->shared_prev[i].gid == pl->gid) {
            return 1;
        }
    }
    return 0;
}

/* Decides, for every listener, which pool's children accept it.  The
 * copies of a listener in other buckets follow the first: the bucket
 * lists are built in the same order. */
int pc_pools_map_listeners(apr_pool_t *p, server_rec *s)
{
    ap_listen_rec **buckets, *lr;
    unsigned char *takers;
    int b, nb, first;

    if ((nb = listener_buckets(p, s, &buckets)) < 1) {
        return !OK;
    }
    pc_conf->num_buckets = nb;
    pc_conf->listeners = apr_array_make(p, 4, sizeof(pc_listener_t));
    for (b = 0; b < nb; b++) {
        first = 0;
        for (lr = buckets[b]; lr != NULL; lr = lr->next, first++) {
            pc_listener_t *pl = apr_array_push(pc_conf->listeners);

            pl->lr = lr;
            pl->bucket = b;
            if (!pc_one_process) {
                heal_listener(s, lr);
            }
            if (b > 0) {
                const pc_listener_t *orig = &APR_ARRAY_IDX(
                    pc_conf->listeners, first, pc_listener_t);
                pl->owner = orig->owner;
                pl->takers = orig->takers;
                pl->tls = orig->tls;
                continue;
            }
            takers = apr_pcalloc(p, pc_conf->pools->nelts);
            pl->owner = listener_owner(s, lr, takers);
            pl->takers = takers;
            pl->tls = lr->protocol != NULL
                      && !strcasecmp(lr->protocol, "https");
        }
    }
    remember_shared_takers();
    return OK;
}

/* Said once the error log is open (pc_pools_map_listeners runs before:
 * its lines would reach only the terminal of the first pass). */
void pc_pools_log_listeners(apr_pool_t *p)
{
    int i;

    for (i = 0; i < pc_conf->listeners->nelts; i++) {
        const pc_listener_t *pl = &APR_ARRAY_IDX(pc_conf->listeners, i,
                                                 pc_listener_t);
        char *addr = NULL;

        if (pl->bucket > 0) {
            continue;
        }
        apr_sockaddr_ip_get(&addr, pl->lr->bind_addr);
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                     "PC0110: listener %s:%u is accepted by %s (%d "
                     "bucket%s)", addr ? addr : "?",
                     (unsigned)pl->lr->bind_addr->port, acceptors(p, pl),
                     pc_conf->num_buckets,
                     pc_conf->num_buckets > 1 ? "s" : "");
    }
}

/* Child i (counted from 0) of a pool of n takes bucket b when
 * b % k == i % k, with k = min(n, buckets): each child takes its share
 * and every bucket has a taker in every pool, also a pool of one. */
int pc_pools_takes_bucket(int pool, int slot, int bucket)
{
    const pc_pool_t *pl = pc_pools_get(pool);
    int n = pl->slots > 0 ? pl->slots : 1;
    int k = n < pc_conf->num_buckets ? n : pc_conf->num_buckets;

    if (k <= 1) {
        return 1;
    }
    return bucket % k == (slot - pl->first_slot) % k;
}

/* A listener of one pool is accepted by that pool only.  A shared one
 * by the pools whose vhosts it reaches, or only by the dispatch pool when
 * there is one: a tenant's children never read a connection that cannot
 * be theirs (a port of its own keeps a tenant away from everyone else's
 * request bytes). */
static int dispatch_takes_all(const pc_listener_t *pl)
{
    /* A TLS listener of one pool stays with it: its connections could
     * not move on after the handshake. */
    return pc_conf->dispatch_all && pc_conf->dispatch_pool >= 0
           && !(pl->tls && pl->owner >= 0);
}

int pc_pools_accepts(int pool, const pc_listener_t *pl)
{
    if (pc_one_process) {
        /* -X: the one process takes every listener and answers 503 for
         * vhosts of other pools rather than leave clients waiting. */
        return 1;
    }
    if (dispatch_takes_all(pl)) {
        return pool == pc_conf->dispatch_pool;
    }
    if (pl->owner >= 0) {
        return pl->owner == pool;
    }
    if (pc_conf->dispatch_pool >= 0) {
        return pool == pc_conf->dispatch_pool;
    }
    return pool >= 0 && pool < pc_conf->pools->nelts && pl->takers[pool];
}

int pc_pools_may_pass(int pool, int other, int was_shared)
{
    return shared_taker(pool, other)
           || (was_shared && shared_taker(other, -1));
}
