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
 * are pipes; the program is the parent's direct child holding the other
 * end, its user the one it runs as once it has exec'd.
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

typedef struct pc_progfd_t {
    int fd;
    ino_t ino;
    int found;               /* 1: the program holding the other end */
    uid_t uid;               /*   was found, and runs as uid */
} pc_progfd_t;

static apr_array_header_t *fds_before;  /* int, sorted, in pconf */
static apr_array_header_t *prog_fds;    /* pc_progfd_t, in pconf */

/* The open descriptors of this process. */
static apr_array_header_t *open_fds(apr_pool_t *p)
{
    apr_array_header_t *fds = apr_array_make(p, 32, sizeof(int));
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *de;

    if (dir == NULL) {
        return fds;
    }
    while ((de = readdir(dir)) != NULL) {
        int fd = atoi(de->d_name);
        if (de->d_name[0] != '.' && fd != dirfd(dir)) {
            APR_ARRAY_PUSH(fds, int) = fd;
        }
    }
    closedir(dir);
    return fds;
}

static int contains(const apr_array_header_t *fds, int fd)
{
    int i;

    for (i = 0; i < fds->nelts; i++) {
        if (APR_ARRAY_IDX(fds, i, int) == fd) {
            return 1;
        }
    }
    return 0;
}

static int before_others(apr_pool_t *p, apr_pool_t *plog, apr_pool_t *ptemp,
                         server_rec *s)
{
    fds_before = open_fds(p);
    prog_fds = apr_array_make(p, 4, sizeof(pc_progfd_t));
    return OK;
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

/* Does process pid hold the pipe ino as one of its descriptors? */
static int holds_pipe(pid_t pid, ino_t ino)
{
    char dirpath[64], want[64];
    struct dirent *de;
    DIR *dir;
    int found = 0;

    snprintf(dirpath, sizeof(dirpath), "/proc/%ld/fd", (long)pid);
    snprintf(want, sizeof(want), "pipe:[%lu]", (unsigned long)ino);
    if ((dir = opendir(dirpath)) == NULL) {
        return 0;
    }
    while (!found && (de = readdir(dir)) != NULL) {
        char target[64];
        ssize_t n;
        if (de->d_name[0] == '.') {
            continue;
        }
        n = readlinkat(dirfd(dir), de->d_name, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = '\0';
            found = (strcmp(target, want) == 0);
        }
    }
    closedir(dir);
    return found;
}

/* Has the child pid exec'd its program yet (and so become its user)? */
static int has_execd(pid_t pid)
{
    char path[64], mine[512], theirs[512];
    ssize_t a, b;

    snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
    a = readlink("/proc/self/exe", mine, sizeof(mine) - 1);
    b = readlink(path, theirs, sizeof(theirs) - 1);
    if (a <= 0 || b <= 0) {
        return 1;           /* gone, or cannot tell: do not wait */
    }
    return a != b || memcmp(mine, theirs, a) != 0;
}

/* The user of the parent's child process that holds the other end of
 * pipe ino; 0 if none is found (*found says which). */
static uid_t program_user(ino_t ino, int *found)
{
    DIR *dir = opendir("/proc");
    struct dirent *de;
    uid_t uid = 0;

    *found = 0;
    if (dir == NULL) {
        return 0;
    }
    while ((de = readdir(dir)) != NULL) {
        pid_t pid = (pid_t)atol(de->d_name);
        int waited;
        if (pid <= 0 || status_field(pid, "PPid") != (long)getpid()
            || !holds_pipe(pid, ino)) {
            continue;
        }
        /* Just forked: it becomes its user right before exec.  A
         * second at most, once per program and (re)start. */
        for (waited = 0; waited < 1000 && !has_execd(pid); waited++) {
            apr_sleep(apr_time_from_msec(1));
        }
        uid = (uid_t)status_field(pid, "Uid");
        *found = (uid != (uid_t)-1);
        break;
    }
    closedir(dir);
    return uid;
}

static void warn_root_program(server_rec *s)
{
    if (pc_conf->pools->nelts < 2) {
        return;             /* one pool: nobody to keep out */
    }
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                 "PC0114: a program started at start-up (RewriteMap "
                 "prg:) runs as root, so every pool's children hold its "
                 "pipes and any tenant's in-process code could query "
                 "it; name the user of the vhost that uses it "
                 "(RewriteMap name prg:/path user:group), and only that "
                 "user's children keep them");
}

static int after_others(apr_pool_t *p, apr_pool_t *plog, apr_pool_t *ptemp,
                        server_rec *s)
{
    apr_array_header_t *now = open_fds(ptemp);
    int i, root_program = 0;

    for (i = 0; fds_before != NULL && i < now->nelts; i++) {
        int fd = APR_ARRAY_IDX(now, i, int);
        struct stat st;
        pc_progfd_t *pf;
        if (contains(fds_before, fd) || fstat(fd, &st) != 0
            || !S_ISFIFO(st.st_mode)) {
            continue;
        }
        pf = apr_array_push(prog_fds);
        pf->fd = fd;
        pf->ino = st.st_ino;
        pf->uid = program_user(st.st_ino, &pf->found);
        root_program |= (pf->found && pf->uid == 0);
    }
    if (root_program && ap_state_query(AP_SQ_MAIN_STATE)
                        == AP_SQ_MS_CREATE_CONFIG) {
        warn_root_program(s);
    }
    return OK;
}

void pc_progs_register_hooks(apr_pool_t *p)
{
    ap_hook_post_config(before_others, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_post_config(after_others, NULL, NULL, APR_HOOK_REALLY_LAST);
}

/* Child, right after fork (still root, before threads). */
void pc_progs_child_init(int pool)
{
    const pc_pool_t *pl = pc_pools_get(pool);
    int devnull, i;

    if (prog_fds == NULL || prog_fds->nelts == 0) {
        return;
    }
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (i = 0; devnull >= 0 && i < prog_fds->nelts; i++) {
        pc_progfd_t *pf = &APR_ARRAY_IDX(prog_fds, i, pc_progfd_t);
        if (pf->found && pf->uid != 0
            && (pl->dispatch || pf->uid != pl->uid)) {
            dup2(devnull, pf->fd);
            fcntl(pf->fd, F_SETFD, FD_CLOEXEC);
        }
    }
    if (devnull >= 0) {
        close(devnull);
    }
}
