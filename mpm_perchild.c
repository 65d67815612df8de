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

/* mpm_perchild.c: the MPM's face to httpd: directives, configuration
 * checks, ap_mpm_query and hook registration.  The parent loop lives in
 * pc_parent.c, a child in pc_child.c, pools in pc_pools.c.
 */

#include "perchild.h"
#include "pc_nofile.h"
#include "pc_pods.h"
#include "pc_handoff.h"
#include "pc_affinity.h"
#include "pc_stall.h"
#include "mpm.h"
#include "mpm_default.h"
#include "http_log.h"
#include "http_main.h"
#include "http_core.h"
#include "apr_strings.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <limits.h>


pc_conf_t *pc_conf;
pc_retained_t *pc_retained;
int pc_one_process;
apr_pool_t *pc_pconf;
int pc_my_pool = -1;

/* ap_mpm_query: every answer from one switch. */
static int perchild_query(int query_code, int *result, apr_status_t *rv)
{
    *rv = APR_SUCCESS;
    switch (query_code) {
    case AP_MPMQ_MAX_DAEMON_USED:
        *result = pc_retained->max_daemons_limit;
        break;
    case AP_MPMQ_IS_THREADED:
        *result = AP_MPMQ_STATIC;
        break;
    case AP_MPMQ_IS_FORKED:
        /* One fixed set of children per pool: no spare-server logic. */
        *result = AP_MPMQ_STATIC;
        break;
    case AP_MPMQ_IS_ASYNC:
    case AP_MPMQ_HAS_SERF:
    case AP_MPMQ_CAN_WAITIO:
        *result = 0;
        break;
    case AP_MPMQ_HARD_LIMIT_DAEMONS:
        *result = pc_conf->server_limit;
        break;
    case AP_MPMQ_HARD_LIMIT_THREADS:
        *result = pc_conf->thread_limit;
        break;
    case AP_MPMQ_MAX_THREADS:
        *result = pc_conf->threads_per_child;
        break;
    case AP_MPMQ_MIN_SPARE_DAEMONS:
    case AP_MPMQ_MAX_SPARE_DAEMONS:
    case AP_MPMQ_MIN_SPARE_THREADS:
    case AP_MPMQ_MAX_SPARE_THREADS:
        *result = 0;
        break;
    case AP_MPMQ_MAX_REQUESTS_DAEMON:
        *result = ap_max_requests_per_child;
        break;
    case AP_MPMQ_MAX_DAEMONS:
        *result = pc_conf->total_children;
        break;
    case AP_MPMQ_MPM_STATE:
        *result = pc_retained->mpm->mpm_state;
        break;
    case AP_MPMQ_GENERATION:
        *result = pc_retained->mpm->my_generation;
        break;
    default:
        *rv = APR_ENOTIMPL;
        break;
    }
    return OK;
}

static const char *perchild_get_name(void)
{
    return MPM_NAME;
}

#ifndef CLOSE_RANGE_CLOEXEC
#define PC_CLOSE_RANGE_CLOEXEC (1U << 2)
#else
#define PC_CLOSE_RANGE_CLOEXEC CLOSE_RANGE_CLOEXEC
#endif

/* Descriptors apache2 inherited from whatever started it (a shell, a
 * test harness, a deployment tool) would reach every tenant's CGI
 * scripts, which run as other users than the one who started it.  Marked
 * close-on-exec at the first pre_config, before the listeners, logs and
 * channels exist (those are close-on-exec anyway): children keep them,
 * programs they run do not (piped loggers get their standard descriptors
 * explicitly). */
static void keep_inherited_from_scripts(void)
{
    DIR *dir;
    struct dirent *de;

#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, PC_CLOSE_RANGE_CLOEXEC) == 0) {
        return;
    }
#endif
    /* (Linux before 5.11: by /proc) */
    if ((dir = opendir("/proc/self/fd")) == NULL) {
        return;
    }
    while ((de = readdir(dir)) != NULL) {
        int fd = atoi(de->d_name), flags;

        if (fd > 2 && fd != dirfd(dir)
            && (flags = fcntl(fd, F_GETFD)) != -1
            && !(flags & FD_CLOEXEC)) {
            fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        }
    }
    closedir(dir);
}

static int perchild_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                               apr_pool_t *ptemp)
{
    /* The layout is part of the key: a graceful restart into a rebuilt
     * module whose retained data differs starts afresh rather than read
     * the old allocation with the new layout. */
    const char *key = apr_psprintf(ptemp, "mpm_perchild_module/%lu",
                                   (unsigned long)sizeof(pc_retained_t));
    int debug = ap_exists_config_define("DEBUG");
    int foreground, no_detach;
    apr_status_t rv;

    pc_one_process = debug || ap_exists_config_define("ONE_PROCESS");
    foreground = debug || ap_exists_config_define("FOREGROUND");
    no_detach = !debug && ap_exists_config_define("NO_DETACH");

    pc_retained = ap_retained_data_get(key);
    if (pc_retained == NULL) {
        pc_retained = ap_retained_data_create(key, sizeof(*pc_retained));
        pc_retained->mpm = ap_unixd_mpm_get_retained_data();
        pc_retained->max_daemons_limit = -1;
    }
    pc_retained->mpm->mpm_state = AP_MPMQ_STARTING;
    pc_pods_claim(plog, pc_retained->mpm->baton == pc_retained);
    if (pc_retained->mpm->baton != pc_retained) {
        pc_retained->mpm->was_graceful = 0;
        pc_retained->mpm->baton = pc_retained;
    }
    ++pc_retained->mpm->module_loads;
    if (pc_retained->mpm->module_loads == 1) {
        keep_inherited_from_scripts();
    }

    /* httpd loads the configuration twice at start; detach only once,
     * after the first pass has proven the configuration. */
    if (pc_retained->mpm->module_loads == 2 && !pc_one_process
        && !foreground) {
        ap_fatal_signal_setup(ap_server_conf, pconf);
        rv = apr_proc_detach(no_detach ? APR_PROC_DETACH_FOREGROUND
                                       : APR_PROC_DETACH_DAEMONIZE);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, NULL,
                         "PC0001: apr_proc_detach failed");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ap_listen_pre_config();
    pc_pconf = pconf;
    pc_conf = apr_pcalloc(pconf, sizeof(*pc_conf));
    pc_conf->declared = apr_array_make(pconf, 4, sizeof(pc_pool_t));
    pc_conf->dispatch_pool = -1;
    pc_conf->pools = apr_array_make(pconf, 4, sizeof(pc_pool_t));
    pc_conf->num_servers = DEFAULT_NUM_SERVERS;
    pc_conf->threads_per_child = DEFAULT_THREADS_PER_CHILD;
    pc_conf->thread_limit = DEFAULT_THREAD_LIMIT;
    pc_conf->server_limit = 0;
    pc_conf->queue_timeout = PC_DEFAULT_QUEUE_TIMEOUT;
    ap_extended_status = 0;
    return OK;
}

/* mod_cgid forks its script daemon from the root parent, as User: every
 * vhost's scripts would run as one user.  Refuse it. */
static int refuse_cgid(void)
{
    if (ap_find_linked_module("mod_cgid.c") == NULL) {
        return OK;
    }
    ap_log_error(APLOG_MARK, APLOG_EMERG | APLOG_STARTUP, 0, NULL,
                 "PC0004: mod_cgid is loaded; its script daemon runs every "
                 "CGI as User, not as the vhost's AssignUserID user.  Use "
                 "mod_cgi with perchild (Debian: 'a2dismod cgid && ln -s "
                 "../mods-available/cgi.load %s/mods-enabled/', "
                 "since 'a2enmod cgi' picks cgid for threaded MPMs)",
                 ap_server_root);
    return !OK;
}

static int check_threads(void)
{
    /* A configuration at odds with itself fails (apache2 -t names it). */
    if (pc_conf->threads_per_child > pc_conf->thread_limit) {
        ap_log_error(APLOG_MARK, APLOG_EMERG | APLOG_STARTUP, 0, NULL,
                     "PC0005: ThreadsPerChild %d exceeds ThreadLimit %d: "
                     "raise ThreadLimit or lower ThreadsPerChild",
                     pc_conf->threads_per_child, pc_conf->thread_limit);
        return !OK;
    }
    if (pc_retained->first_thread_limit
        && pc_conf->thread_limit != pc_retained->first_thread_limit) {
        /* The scoreboard keeps its size until a full restart. */
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                     "PC0006: changing ThreadLimit to %d from %d needs a "
                     "full stop and start; keeping %d",
                     pc_conf->thread_limit, pc_retained->first_thread_limit,
                     pc_retained->first_thread_limit);
        pc_conf->thread_limit = pc_retained->first_thread_limit;
    }
    if (pc_conf->threads_per_child > pc_conf->thread_limit) {
        /* A restart that raised both: the server goes on, as worker's
         * does, with as many threads as the kept limit allows. */
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                     "PC0010: ThreadsPerChild %d exceeds the ThreadLimit "
                     "of %d in force until a full stop and start; using %d",
                     pc_conf->threads_per_child, pc_conf->thread_limit,
                     pc_conf->thread_limit);
        pc_conf->threads_per_child = pc_conf->thread_limit;
    }
    return OK;
}

static int perchild_check_config(apr_pool_t *p, apr_pool_t *plog,
                                 apr_pool_t *ptemp, server_rec *s)
{
    int first = !pc_retained->first_server_limit;

    if (refuse_cgid() != OK || check_threads() != OK) {
        return !OK;
    }
    if (!first && pc_conf->server_limit_set
        && pc_conf->server_limit != pc_retained->first_server_limit) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "PC0007: changing ServerLimit to %d from %d needs a "
                     "full stop and start; keeping %d",
                     pc_conf->server_limit, pc_retained->first_server_limit,
                     pc_retained->first_server_limit);
    }
    if (!first) {
        pc_conf->server_limit = pc_retained->first_server_limit;
    }
    if (pc_pools_resolve(p, s, first) != OK) {
        return !OK;
    }
    if (!pc_one_process) {
        pc_nofile_raise(s, first);
    }
    return OK;
}

/* apache2 -S (and -t -D DUMP_VHOSTS) lists the vhosts; say whose they
 * are, after httpd's own list. */
static void perchild_test_config(apr_pool_t *p, server_rec *s)
{
    if (ap_exists_config_define("DUMP_VHOSTS")) {
        pc_pools_dump(p, s);
    }
}

/* Runs before the core's open_logs so that errors still reach the
 * console; opens listeners and decides which pool accepts which. */
static int perchild_open_logs(apr_pool_t *p, apr_pool_t *plog,
                              apr_pool_t *ptemp, server_rec *s)
{
    int startup = (pc_retained->mpm->module_loads == 1);

    /* Here, not in check_config: after apache2 -k stop and friends (as
     * any user) are done, before the server detaches, so that a start
     * that could never run a child fails at once with this reason. */
    if (startup && !pc_one_process && geteuid() != 0) {
        ap_log_error(APLOG_MARK, APLOG_EMERG | APLOG_STARTUP, 0, NULL,
                     "PC0011: perchild must be started as root: its parent "
                     "runs each pool's children as that pool's user (-X "
                     "runs one process as the current user, for debugging)");
        return !OK;
    }
    pc_pconf = p;
    pc_logs_wrap(p);
    if (ap_setup_listeners(ap_server_conf) < 1) {
        ap_log_error(APLOG_MARK, APLOG_ALERT | (startup ? APLOG_STARTUP : 0),
                     0, startup ? NULL : s,
                     "PC0008: no listening sockets available, shutting "
                     "down");
        return !OK;
    }
    /* One pipe of death per pool: a child keeps only its own pool's
     * reading end, so no tenant can stop another tenant's children or
     * eat the bytes meant for them. */
    if (pc_pods_open(plog, s, startup) != OK) {
        return !OK;
    }
    if (!pc_retained->first_server_limit) {
        pc_retained->first_server_limit = pc_conf->server_limit;
        pc_retained->first_thread_limit = pc_conf->thread_limit;
    }
    if (pc_pools_map_listeners(p, s) != OK) {
        return !OK;
    }
    pc_affinity_init();
    return pc_handoff_open_channels(p, s);
}

/* Directive handlers only store and validate their own argument;
 * cross-directive checks happen in perchild_check_config. */

static const char *int_arg(cmd_parms *cmd, const char *arg, int min, int max,
                           int *out)
{
    char *end;
    long v;
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err != NULL) {
        return err;
    }
    v = strtol(arg, &end, 10);
    if (!*arg || *end || v < min || v > max) {
        return apr_psprintf(cmd->pool, "%s: '%s' must be a whole number "
                            "from %d to %d", cmd->cmd->name, arg, min, max);
    }
    *out = (int)v;
    return NULL;
}

static const char *set_num_servers(cmd_parms *cmd, void *d, const char *arg)
{
    return int_arg(cmd, arg, 1, PC_MAX_SERVER_LIMIT, &pc_conf->num_servers);
}

static const char *set_queue_timeout(cmd_parms *cmd, void *d,
                                     const char *arg)
{
    return int_arg(cmd, arg, 0, 3600, &pc_conf->queue_timeout);
}

static const char *set_threads_per_child(cmd_parms *cmd, void *d,
                                         const char *arg)
{
    return int_arg(cmd, arg, 1, PC_MAX_THREAD_LIMIT,
                   &pc_conf->threads_per_child);
}

static const char *set_thread_limit(cmd_parms *cmd, void *d, const char *arg)
{
    return int_arg(cmd, arg, 1, PC_MAX_THREAD_LIMIT, &pc_conf->thread_limit);
}

static const char *set_server_limit(cmd_parms *cmd, void *d, const char *arg)
{
    pc_conf->server_limit_set = 1;
    return int_arg(cmd, arg, 1, PC_MAX_SERVER_LIMIT, &pc_conf->server_limit);
}

/* What ChildPerUserID and DispatchUserID do with their arguments. */
typedef const char *pool_adder(apr_pool_t *p, const char *user,
                               const char *group, const char *count,
                               const char *origin);

/* "user group [num-children]", server config only; the error names the
 * directive. */
static const char *pool_directive(cmd_parms *cmd, int argc,
                                  char *const argv[], pool_adder *add)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    const char *origin;

    if (err != NULL) {
        return err;
    }
    if (argc < 2 || argc > 3) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": takes a user, a "
                           "group and optionally the number of children",
                           NULL);
    }
    origin = apr_psprintf(cmd->pool, "line %d of %s",
                          cmd->directive->line_num,
                          cmd->directive->filename);
    err = add(cmd->pool, argv[0], argv[1], argc == 3 ? argv[2] : NULL,
              origin);
    return err ? apr_pstrcat(cmd->pool, cmd->cmd->name, ": ", err, NULL)
               : NULL;
}

static const char *set_child_per_user(cmd_parms *cmd, void *d, int argc,
                                      char *const argv[])
{
    return pool_directive(cmd, argc, argv, pc_pools_add_declared);
}

static const char *set_dispatch_user(cmd_parms *cmd, void *d, int argc,
                                     char *const argv[])
{
    return pool_directive(cmd, argc, argv, pc_pools_set_dispatch);
}

/* An On/Off directive of the server config: cmd->info is the offset of
 * its int in pc_conf_t. */
static const char *set_global_flag(cmd_parms *cmd, void *d, int on)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err != NULL) {
        return err;
    }
    *(int *)((char *)pc_conf + (apr_size_t)cmd->info) = on;
    return NULL;
}

static const char *set_assign_user(cmd_parms *cmd, void *d, const char *user,
                                   const char *group)
{
    pc_server_conf_t *sc = PC_SERVER_CONF(cmd->server);
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);

    if (err != NULL) {
        /* mpm-itk allows it there; say what to do instead. */
        return "AssignUserID: only allowed directly inside <VirtualHost>: "
               "perchild has no per-directory identity.  Serve that "
               "content from a vhost of its own, or (if it names the "
               "vhost's own user) put the line in <IfModule "
               "mpm_itk_module>";
    }
    if (!cmd->server->is_virtual) {
        return "AssignUserID: only allowed inside <VirtualHost>; the main "
               "server runs as User/Group";
    }
    if (sc->user != NULL) {
        return apr_psprintf(cmd->pool, "AssignUserID: this vhost already "
                            "runs as %s %s", sc->user, sc->group);
    }
    err = pc_pools_parse_id(cmd->pool, user, group, &sc->uid, &sc->gid);
    if (err != NULL) {
        return apr_pstrcat(cmd->pool, "AssignUserID: ", err, NULL);
    }
    sc->user = user;
    sc->group = group;
    return NULL;
}

static void *create_server_conf(apr_pool_t *p, server_rec *s)
{
    pc_server_conf_t *sc = apr_pcalloc(p, sizeof(*sc));

    return sc;
}

/* A vhost never inherits the main server's identity by merging: without
 * AssignUserID it belongs to the User/Group pool. */
static void *merge_server_conf(apr_pool_t *p, void *basev, void *addv)
{
    pc_server_conf_t *sc = apr_pcalloc(p, sizeof(*sc));

    *sc = *(pc_server_conf_t *)addv;
    return sc;
}

static int perchild_run(apr_pool_t *pconf, apr_pool_t *plog, server_rec *s)
{
    return pc_parent_run(pconf, plog, s);
}

static void perchild_hooks(apr_pool_t *p)
{
    /* Before core.c's open_logs, so startup errors reach the console. */
    static const char *const succ_core[] = { "core.c", NULL };

    pc_one_process = 0;
    /* REALLY_FIRST: other pre_config hooks ask ap_mpm_query for the
     * state, which needs the retained data set up here. */
    ap_hook_pre_config(perchild_pre_config, NULL, NULL,
                       APR_HOOK_REALLY_FIRST);
    ap_hook_check_config(perchild_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_test_config(perchild_test_config, NULL, NULL, APR_HOOK_LAST);
    ap_hook_open_logs(perchild_open_logs, NULL, succ_core,
                      APR_HOOK_REALLY_FIRST);
    ap_hook_mpm(perchild_run, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_mpm_query(perchild_query, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_mpm_get_name(perchild_get_name, NULL, NULL, APR_HOOK_MIDDLE);
    pc_handoff_register_hooks(p);
    pc_status_register_hooks(p);
    pc_progs_register_hooks(p);
}

/* Other MPMs' directives (worker's and prefork's sizing, mpm-itk's): an
 * administrator who brings them along learns why they do not apply, not
 * that they are "perhaps misspelled". */
static const char *not_perchild(cmd_parms *cmd, void *dummy,
                                const char *args)
{
    return apr_psprintf(cmd->pool, "%s has no meaning under perchild: %s.  "
                        "Remove it, or put it in <IfModule> for the MPM "
                        "it is meant for", cmd->cmd->name,
                        (const char *)cmd->info);
}

#define PC_NOT_PERCHILD(name, why) \
    AP_INIT_RAW_ARGS(name, not_perchild, why, RSRC_CONF | ACCESS_CONF, \
        "another MPM's directive, refused with its reason")

#define PC_SIZING "every child keeps ThreadsPerChild threads, and a pool " \
    "has the children its ChildPerUserID gives (NumServers if none)"
#define PC_ITK_ROOT "children never keep root or CAP_SETUID, and uid 0 " \
    "and gid 0 are refused"
#define PC_ITK_EXPR "the identity is fixed per vhost (AssignUserID inside " \
    "<VirtualHost>)"

static const command_rec perchild_cmds[] = {
    LISTEN_COMMANDS,
    AP_INIT_TAKE_ARGV("ChildPerUserID", set_child_per_user, NULL, RSRC_CONF,
        "user group [num-children]: a pool of children running as that "
        "user and group"),
    AP_INIT_TAKE_ARGV("DispatchUserID", set_dispatch_user, NULL, RSRC_CONF,
        "user group [num-children]: a pool that alone accepts shared "
        "listeners and passes every request to its owner"),
    AP_INIT_FLAG("PerchildDispatchAll", set_global_flag,
        (void *)APR_OFFSETOF(pc_conf_t, dispatch_all), RSRC_CONF,
        "On: the dispatch pool accepts every listener, also those of a "
        "single pool"),
    AP_INIT_FLAG("PerchildCPUAffinity", set_global_flag,
        (void *)APR_OFFSETOF(pc_conf_t, cpu_affinity), RSRC_CONF,
        "On: pin each child of a pool with 2+ children to some of the CPUs "
        "and pass connections to the child on the sender's CPU"),
    AP_INIT_TAKE1("PerchildQueueTimeout", set_queue_timeout, NULL, RSRC_CONF,
        "Seconds a connection passed to a pool may wait while the pool's "
        "children are stopped or take no work; then it gets 503 (0: wait "
        "for ever)"),
    AP_INIT_TAKE2("AssignUserID", set_assign_user, NULL,
                  RSRC_CONF | ACCESS_CONF,
        "user group: the pool that serves this virtual host"),
    AP_INIT_TAKE1("NumServers", set_num_servers, NULL, RSRC_CONF,
        "Children in each pool whose size is not given"),
    AP_INIT_TAKE1("ThreadsPerChild", set_threads_per_child, NULL, RSRC_CONF,
        "Worker threads in each child"),
    AP_INIT_TAKE1("StartThreads", set_threads_per_child, NULL, RSRC_CONF,
        "Old perchild name of ThreadsPerChild"),
    AP_INIT_TAKE1("ThreadLimit", set_thread_limit, NULL, RSRC_CONF,
        "Upper limit of ThreadsPerChild for this run of httpd"),
    AP_INIT_TAKE1("MaxThreadsPerChild", set_thread_limit, NULL, RSRC_CONF,
        "Old perchild name of ThreadLimit"),
    AP_INIT_TAKE1("ServerLimit", set_server_limit, NULL, RSRC_CONF,
        "Upper limit of children of all pools for this run of httpd"),
    AP_GRACEFUL_SHUTDOWN_TIMEOUT_COMMAND,
    PC_NOT_PERCHILD("StartServers", PC_SIZING),
    PC_NOT_PERCHILD("MinSpareThreads", PC_SIZING),
    PC_NOT_PERCHILD("MaxSpareThreads", PC_SIZING),
    PC_NOT_PERCHILD("MaxRequestWorkers", PC_SIZING),
    PC_NOT_PERCHILD("MaxClients", PC_SIZING),
    PC_NOT_PERCHILD("MinSpareServers", PC_SIZING),
    PC_NOT_PERCHILD("MaxSpareServers", PC_SIZING),
    PC_NOT_PERCHILD("AssignUserIDExpr", PC_ITK_EXPR),
    PC_NOT_PERCHILD("AssignGroupIDExpr", PC_ITK_EXPR),
    PC_NOT_PERCHILD("MaxClientsVHost", "a vhost's pool serves at most its "
                    "children times ThreadsPerChild connections at once "
                    "(ChildPerUserID)"),
    PC_NOT_PERCHILD("NiceValue", "children run at the parent's priority"),
    PC_NOT_PERCHILD("LimitUIDRange", PC_ITK_ROOT),
    PC_NOT_PERCHILD("LimitGIDRange", PC_ITK_ROOT),
    PC_NOT_PERCHILD("EnableCapabilities", PC_ITK_ROOT),
    { NULL }
};

AP_DECLARE_MODULE(mpm_perchild) = {
    MPM20_MODULE_STUFF,
    NULL,                       /* rewrite args */
    NULL,                       /* create per-directory config */
    NULL,                       /* merge per-directory config */
    create_server_conf,         /* create per-server config */
    merge_server_conf,          /* merge per-server config */
    perchild_cmds,              /* directives */
    perchild_hooks,             /* register hooks */
    AP_MODULE_FLAG_NONE         /* flags */
};
