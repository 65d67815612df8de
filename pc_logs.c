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

/* pc_logs.c: a tenant's child holds no other tenant's log descriptors.
 *
 * The root parent opens every log.  A child inherits them all, so a
 * tenant's in-process code (mod_php, mod_lua) could append to another
 * tenant's access or error log, or to its piped logger.  Right after
 * fork, each descriptor that belongs only to a vhost of another pool is
 * replaced in place (dup2, so the number stays valid for whoever still
 * holds it): access logs by /dev/null, error logs by the main server's
 * error log.  The main server's logs, which vhosts without logs of their
 * own share, stay.
 *
 * Which descriptors belong to which vhost: mod_log_config opens its logs
 * through a replaceable "writer init" function; we wrap it and note the
 * descriptors each call creates.
 */

#include "perchild.h"
#include "http_log.h"
#include "http_main.h"
#include "mod_log_config.h"
#include "apr_optional.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

APLOG_USE_MODULE(mpm_perchild);

/* Descriptors looked at in all, at the most. */
#define PC_FD_BOUND_MAX (1 << 20)

typedef struct pc_logfd_t {
    server_rec *s;
    int fd;
} pc_logfd_t;

static apr_array_header_t *log_fds;     /* pc_logfd_t, in pconf */
static ap_log_writer_init *wrapped_init;

/* An upper bound of this process's descriptor numbers: the size of its
 * descriptor table (FDSize in /proc/self/status), else the open files
 * limit.  -1 if neither can be told. */
static int fd_bound(void)
{
    struct rlimit rl;
    char buf[2048];
    const char *at;
    long size = -1;
    ssize_t n = -1;
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
    }
    if (n > 0) {
        buf[n] = '\0';
        if ((at = strstr(buf, "\nFDSize:")) != NULL) {
            size = strtol(at + 8, NULL, 10);
        }
    }
    if (size <= 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0
        && rl.rlim_cur != RLIM_INFINITY) {
        size = (long)rl.rlim_cur;
    }
    return size > 0 && size <= PC_FD_BOUND_MAX ? (int)size : -1;
}

/* Which descriptors below 'n' are open (1) or not (0); NULL with errno
 * set if that cannot be told.  A poll answers for many at once (POLLNVAL
 * for a closed one), where listing /proc/self/fd costs a directory entry
 * per descriptor: done twice for every log file opened, that listing
 * made the start of a host with 1000 tenants' logs take half a minute. */
static char *open_fds(apr_pool_t *p, int n)
{
    struct pollfd *pfd;
    char *open;
    int i;

    if (n < 0) {
        errno = EMFILE;
        return NULL;
    }
    pfd = apr_palloc(p, (n + 1) * sizeof(*pfd));    /* n may be 0 */
    open = apr_palloc(p, n + 1);
    for (i = 0; i < n; i++) {
        pfd[i].fd = i;
        pfd[i].events = 0;
        pfd[i].revents = 0;
    }
    if (pc_poll_now(pfd, n) < 0) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        open[i] = !(pfd[i].revents & POLLNVAL);
    }
    return open;
}

/* mod_log_config's writer init, wrapped: whatever descriptors the real
 * one opens for vhost 's' are noted as s's. */
static void *noting_init(apr_pool_t *p, server_rec *s, const char *name)
{
    apr_pool_t *tmp;
    char *before, *after = NULL;
    void *handle;
    int i, nb, na, err = 0;

    apr_pool_create(&tmp, p);
    nb = fd_bound();
    if ((before = open_fds(tmp, nb)) == NULL) {
        err = errno;
    }
    handle = wrapped_init(p, s, name);
    na = fd_bound();
    if (before != NULL && (after = open_fds(tmp, na)) == NULL) {
        err = errno;
    }
    if (before == NULL || after == NULL) {
        /* Other tenants' children would keep it open: refuse to start. */
        ap_log_error(APLOG_MARK, APLOG_ERR, err, s,
                     "PC0119: cannot tell which descriptors the log %s "
                     "uses", name);
        apr_pool_destroy(tmp);
        return NULL;
    }
    for (i = 0; i < na; i++) {
        if (after[i] && (i >= nb || !before[i])) {
            pc_logfd_t *lf = apr_array_push(log_fds);
            lf->s = s;
            lf->fd = i;
        }
    }
    apr_pool_destroy(tmp);
    return handle;
}

/* Parent, at open_logs before mod_log_config opens its logs. */
void pc_logs_wrap(apr_pool_t *pconf)
{
    APR_OPTIONAL_FN_TYPE(ap_log_set_writer_init) *set_init;
    ap_log_writer_init *prev;

    log_fds = apr_array_make(pconf, 8, sizeof(pc_logfd_t));
    set_init = APR_RETRIEVE_OPTIONAL_FN(ap_log_set_writer_init);
    if (set_init == NULL) {
        return;             /* no mod_log_config */
    }
    prev = set_init(noting_init);
    if (prev != noting_init) {
        /* mod_log_config resets its writer at each pre_config, so this
         * is its current one (plain or BufferedLogs). */
        wrapped_init = prev;
    }
}

static int owned_elsewhere(server_rec *s, int pool)
{
    return s->is_virtual && PC_SERVER_CONF(s)->pool != pool;
}

static void replace_fd(int fd, int with)
{
    if (fd >= 0 && with >= 0 && fd != with) {
        dup3(with, fd, O_CLOEXEC);
    }
}

static int error_log_fd(server_rec *s)
{
    apr_os_file_t fd;

    if (s->error_log == NULL || apr_os_file_get(&fd, s->error_log)) {
        return -1;
    }
    return fd;
}

/* The error log descriptors of this pool's vhosts (and the main
 * server's): httpd opens a log named by several vhosts once, so a file
 * one of them names is this pool's too.  Collected once per child: a
 * scan of all vhosts per vhost made a child's start quadratic in the
 * tenant count. */
static apr_array_header_t *own_error_logs(apr_pool_t *p, int pool)
{
    apr_array_header_t *own = apr_array_make(p, 4, sizeof(int));
    server_rec *s;

    for (s = ap_server_conf; s != NULL; s = s->next) {
        int fd = error_log_fd(s);
        if (fd >= 0 && !owned_elsewhere(s, pool)) {
            APR_ARRAY_PUSH(own, int) = fd;
        }
    }
    return own;
}

static int contains_fd(const apr_array_header_t *a, int fd)
{
    int i;

    for (i = 0; i < a->nelts; i++) {
        if (APR_ARRAY_IDX(a, i, int) == fd) {
            return 1;
        }
    }
    return 0;
}

/* Child, right after fork (still root, before threads): takes away the
 * descriptors of other pools' vhost logs. */
void pc_logs_child_init(int pool)
{
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    int main_err = error_log_fd(ap_server_conf);
    apr_pool_t *tmp;
    apr_array_header_t *own;
    server_rec *s;
    int i;

    for (i = 0; log_fds != NULL && i < log_fds->nelts; i++) {
        pc_logfd_t *lf = &APR_ARRAY_IDX(log_fds, i, pc_logfd_t);
        if (owned_elsewhere(lf->s, pool)) {
            replace_fd(lf->fd, devnull);
        }
    }
    apr_pool_create(&tmp, pc_pconf);
    own = own_error_logs(tmp, pool);
    for (s = ap_server_conf->next; s != NULL; s = s->next) {
        int fd = error_log_fd(s);
        if (owned_elsewhere(s, pool) && fd != main_err
            && !contains_fd(own, fd)) {
            replace_fd(fd, main_err >= 0 ? main_err : devnull);
        }
    }
    apr_pool_destroy(tmp);
    if (devnull >= 0) {
        close(devnull);
    }
}
