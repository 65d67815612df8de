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

/* pc_progs.c: a tenant's child holds no pipes to another user's
 * programs.
 *
 * Some modules start long-running programs in the root parent at
 * post_config and talk to them over pipes: mod_rewrite's
 * "RewriteMap name prg:/path [user:group]".  Every child inherits the
 * parent's ends, so a tenant's in-process code could ask alice's map
 * program for her answers or garble them.  Such a program runs as the
 * user its RewriteMap names (root when it names none), and that user's
 * children are the ones that may use it: right after fork, a child
 * replaces the pipes of programs that run as any other user except
 * root by /dev/null (dup2: the number stays valid, the module just
 * reads EOF).  A program left running as root cannot be told apart by
 * its user; its pipes stay in every child, and PC0114 says how to fix
 * that.
 *
 * Which pipes and which program: the descriptors that appear across
 * the other modules' post_config hooks (ours run first and last) and
 * are pipes; the program is the parent's direct child that has the
 * other end as its standard input or output, its user the one it runs
 * as once it has exec'd.  A program that has not exec'd within two
 * seconds is nobody's: every child gives its pipes up (PC0115).  Pipes
 * no such program holds (a module's own daemon, forked without exec)
 * stay in every child.
 */

#include "perchild.h"
#include "http_log.h"
#include "http_main.h"
#include "http_core.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

APLOG_USE_MODULE(mpm_perchild);

/* What a child does with a pipe the parent got during post_config. */
typedef enum {
    PROG_KEEP,               /* no exec'd program holds its other end */
    PROG_USER,               /* a program running as 'uid' (root: keep) */
    PROG_UNSURE              /* a program that did not exec in time */
} pc_progkind_t;

typedef struct pc_progfd_t {
    int fd;
    dev_t dev;
    ino_t ino;
    pc_progkind_t kind;
    uid_t uid;
    pid_t pid;               /* the program, while sorting them out */
} pc_progfd_t;

static apr_array_header_t *fds_before;  /* pc_progfd_t, in pconf */
static unsigned long long started_after; /* clock ticks since boot */
static apr_array_header_t *prog_fds;    /* pc_progfd_t, in pconf */

/* The open descriptors of this process, with what they are. */
static apr_array_header_t *open_fds(apr_pool_t *p)
{
    apr_array_header_t *fds = apr_array_make(p, 32, sizeof(pc_progfd_t));
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *de;

    if (dir == NULL) {
        return fds;
    }
    while ((de = readdir(dir)) != NULL) {
        int fd = atoi(de->d_name);
        struct stat st;
        pc_progfd_t *pf;
        if (de->d_name[0] == '.' || fd == dirfd(dir)
            || fstat(fd, &st) != 0) {
            continue;
        }
        pf = apr_array_push(fds);
        memset(pf, 0, sizeof(*pf));
        pf->fd = fd;
        pf->dev = st.st_dev;
        pf->ino = S_ISFIFO(st.st_mode) ? st.st_ino : 0;
        pf->kind = S_ISFIFO(st.st_mode) ? PROG_KEEP : -1;
    }
    closedir(dir);
    return fds;
}

/* Was this very descriptor (number and file) open before? */
static int was_open(const pc_progfd_t *pf)
{
    int i;

    for (i = 0; i < fds_before->nelts; i++) {
        const pc_progfd_t *b = &APR_ARRAY_IDX(fds_before, i, pc_progfd_t);
        if (b->fd == pf->fd && b->dev == pf->dev && b->ino == pf->ino) {
            return 1;
        }
    }
    return 0;
}

static int before_others(apr_pool_t *p, apr_pool_t *plog, apr_pool_t *ptemp,
                         server_rec *s)
{
    double up = 0;
    FILE *f = fopen("/proc/uptime", "r");

    fds_before = open_fds(p);
    prog_fds = apr_array_make(p, 4, sizeof(pc_progfd_t));
    /* Processes forked from here on, in /proc/<pid>/stat's unit (a
     * tick early: the clock and the field are coarse). */
    if (f != NULL && fscanf(f, "%lf", &up) == 1 && up > 0) {
        started_after = (unsigned long long)(up * sysconf(_SC_CLK_TCK));
        started_after = started_after > 0 ? started_after - 1 : 0;
    }
    if (f != NULL) {
        fclose(f);
    }
    return OK;
}

/* A child of this process forked since before_others?  Old children
 * (the previous generation's, at a graceful restart) hold no new pipe
 * and may hold many descriptors: not worth reading. */
static int new_child(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long long start = 0;
    long ppid = -1;
    int i;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if ((f = fopen(path, "r")) == NULL) {
        return 0;
    }
    p = fgets(buf, sizeof(buf), f);
    fclose(f);
    if (p == NULL || (p = strrchr(buf, ')')) == NULL) {
        return 0;
    }
    /* After "pid (comm)": state, ppid (4th field) ... starttime
     * (22nd). */
    for (i = 3, p += 2; i < 22 && p != NULL; i++) {
        if (i == 4) {
            ppid = strtol(p, NULL, 10);
        }
        p = strchr(p, ' ');
        p = p ? p + 1 : NULL;
    }
    if (p != NULL) {
        start = strtoull(p, NULL, 10);
    }
    return ppid == (long)getpid() && start >= started_after;
}

/* A field of /proc/<pid>/status as a number, or -1. */
static long status_field(pid_t pid, const char *name)
{
    char path[64], line[256];
    size_t len = strlen(name);
    long value = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    if ((f = fopen(path, "r")) == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, name, len) == 0 && line[len] == ':') {
            value = strtol(line + len + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return value;
}

/* The pipe that descriptor fd of process pid is, or 0. */
static ino_t pipe_at(pid_t pid, int fd)
{
    char path[64], target[64];
    unsigned long ino = 0;
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/%ld/fd/%d", (long)pid, fd);
    n = readlink(path, target, sizeof(target) - 1);
    if (n <= 0) {
        return 0;
    }
    target[n] = '\0';
    return sscanf(target, "pipe:[%lu]", &ino) == 1 ? (ino_t)ino : 0;
}

/* Does process pid hold pipe ino at any descriptor? */
static int holds_pipe(pid_t pid, ino_t ino)
{
    char path[64];
    struct dirent *de;
    DIR *dir;
    int found = 0;

    snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
    if ((dir = opendir(path)) == NULL) {
        return 0;
    }
    while (!found && (de = readdir(dir)) != NULL) {
        found = de->d_name[0] != '.'
                && pipe_at(pid, atoi(de->d_name)) == ino;
    }
    closedir(dir);
    return found;
}

/* Does /proc/<pid>/<what> name what /proc/self/<what> names?  1 yes,
 * 0 no, -1 cannot tell (gone, or not ours to read). */
static int same_as_mine(pid_t pid, const char *what)
{
    char path[64], mine[512], theirs[512];
    ssize_t a, b;

    snprintf(path, sizeof(path), "/proc/self/%s", what);
    a = readlink(path, mine, sizeof(mine) - 1);
    snprintf(path, sizeof(path), "/proc/%ld/%s", (long)pid, what);
    b = readlink(path, theirs, sizeof(theirs) - 1);
    if (a <= 0 || b <= 0) {
        return -1;
    }
    return a == b && memcmp(mine, theirs, a) == 0;
}

/* Has the child pid exec'd its program yet (and so become its user)?
 * Gone, or cannot tell: do not wait for it. */
static int has_execd(pid_t pid)
{
    return same_as_mine(pid, "exe") != 1;
}

/* Is pid's standard input still this process's (a fork that has not
 * set up its own yet)? */
static int stdin_is_ours(pid_t pid)
{
    return same_as_mine(pid, "fd/0") == 1;
}

/* The children forked since before_others. */
static apr_array_header_t *new_children(apr_pool_t *p)
{
    apr_array_header_t *pids = apr_array_make(p, 4, sizeof(pid_t));
    DIR *dir = opendir("/proc");
    struct dirent *de;

    if (dir == NULL) {
        return pids;
    }
    while ((de = readdir(dir)) != NULL) {
        pid_t pid = (pid_t)atol(de->d_name);
        if (pid > 0 && new_child(pid)) {
            APR_ARRAY_PUSH(pids, pid_t) = pid;
        }
    }
    closedir(dir);
    return pids;
}

/* Which program pipe pf leads to: a child forked since before_others
 * that has exec'd with it as its standard input or output, which is how
 * apr_proc_create hands it over (RewriteMap prg:).  A child just forked
 * gets there within moments; one that holds the pipe elsewhere, has
 * set its standard input up and has not exec'd is a module's own daemon
 * (mod_fcgid's process manager), whose pipes every child keeps.  Waits
 * until 'deadline' at most. */
static void find_program(pc_progfd_t *pf, apr_array_header_t *kids,
                         apr_time_t deadline)
{
    int i, pending;

    do {
        pending = 0;
        for (i = 0; i < kids->nelts; i++) {
            pid_t pid = APR_ARRAY_IDX(kids, i, pid_t);
            int execd = has_execd(pid);
            int std = pipe_at(pid, 0) == pf->ino || pipe_at(pid, 1) == pf->ino;
            if (std && execd) {
                long uid = status_field(pid, "Uid");
                pf->pid = pid;
                pf->kind = uid >= 0 ? PROG_USER : PROG_UNSURE;
                pf->uid = (uid_t)(uid >= 0 ? uid : 0);
                return;
            }
            if (!execd && (std || (stdin_is_ours(pid)
                                   && holds_pipe(pid, pf->ino)))) {
                pending = 1;
                pf->kind = std ? PROG_UNSURE : pf->kind;
            }
        }
        if (pending) {
            apr_sleep(apr_time_from_msec(1));
        }
    } while (pending && apr_time_now() < deadline);
}

static void warn_programs(server_rec *s, int root, int unsure)
{
    if (pc_conf->pools->nelts < 2
        || ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_CONFIG) {
        return;             /* one pool: nobody to keep out */
    }
    if (root) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "PC0114: a program started at start-up (RewriteMap "
                     "prg:) runs as root, so every pool's children hold "
                     "its pipes and any tenant's in-process code could "
                     "query it; name the user of the vhost that uses it "
                     "(RewriteMap name prg:/path user:group), and only "
                     "that user's children keep them");
    }
    if (unsure) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "PC0115: a program started at start-up (RewriteMap "
                     "prg:) did not run its command within 2 seconds, so "
                     "its user is not known: no child keeps its pipes");
    }
}

static int after_others(apr_pool_t *p, apr_pool_t *plog, apr_pool_t *ptemp,
                        server_rec *s)
{
    apr_array_header_t *now = open_fds(ptemp), *kids;
    apr_time_t deadline = apr_time_now() + apr_time_from_sec(2);
    int i, root = 0, unsure = 0;

    for (i = 0; fds_before != NULL && i < now->nelts; i++) {
        pc_progfd_t *pf = &APR_ARRAY_IDX(now, i, pc_progfd_t);
        if (pf->kind == PROG_KEEP && !was_open(pf)) {
            *(pc_progfd_t *)apr_array_push(prog_fds) = *pf;
        }
    }
    if (prog_fds == NULL || prog_fds->nelts == 0) {
        return OK;
    }
    kids = new_children(ptemp);
    for (i = 0; i < prog_fds->nelts; i++) {
        pc_progfd_t *pf = &APR_ARRAY_IDX(prog_fds, i, pc_progfd_t);
        find_program(pf, kids, deadline);
        root |= pf->kind == PROG_USER && pf->uid == 0;
        unsure |= pf->kind == PROG_UNSURE;
    }
    warn_programs(s, root, unsure);
    return OK;
}

void pc_progs_register_hooks(apr_pool_t *p)
{
    ap_hook_post_config(before_others, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_post_config(after_others, NULL, NULL, APR_HOOK_REALLY_LAST);
}

/* Does a child of pool pl give up pipe pf?  A program running as
 * another user is that user's; the dispatch pool serves nothing and
 * needs none; one whose user is not known is nobody's. */
static int not_ours(const pc_progfd_t *pf, const pc_pool_t *pl)
{
    if (pf->kind == PROG_UNSURE) {
        return 1;
    }
    return pf->kind == PROG_USER && pf->uid != 0
           && (pl->dispatch || pf->uid != pl->uid);
}

/* Child, right after fork (still root, before threads).  With -X the
 * process is the parent too: it keeps everything. */
void pc_progs_child_init(int pool)
{
    const pc_pool_t *pl = pc_pools_get(pool);
    int devnull, i;

    if (pc_one_process || prog_fds == NULL || prog_fds->nelts == 0) {
        return;
    }
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (i = 0; devnull >= 0 && i < prog_fds->nelts; i++) {
        pc_progfd_t *pf = &APR_ARRAY_IDX(prog_fds, i, pc_progfd_t);
        if (not_ours(pf, pl)) {
            dup2(devnull, pf->fd);
            fcntl(pf->fd, F_SETFD, FD_CLOEXEC);
        }
    }
    if (devnull >= 0) {
        close(devnull);
    }
}
