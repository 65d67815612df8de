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

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

APLOG_USE_MODULE(mpm_perchild);

typedef struct pc_logfd_t {
    server_rec *s;
    int fd;
} pc_logfd_t;

static apr_array_header_t *log_fds;     /* pc_logfd_t, in pconf */
static ap_log_writer_init *wrapped_init;

/* The open descriptors of this process, as a sorted array. */
static apr_array_header_t *open_fds(apr_pool_t *p)
{
    apr_array_header_t *fds = apr_array_make(p, 32, sizeof(int));
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *de;
    int self;

    if (dir == NULL) {
        return fds;
    }
    self = dirfd(dir);
    while ((de = readdir(dir)) != NULL) {
        int fd = atoi(de->d_name);
        if (de->d_name[0] != '.' && fd != self) {
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

/* mod_log_config's writer init, wrapped: whatever descriptors the real
 * one opens for vhost 's' are noted as s's. */
static void *noting_init(apr_pool_t *p, server_rec *s, const char *name)
{
    apr_pool_t *tmp;
    apr_array_header_t *before, *after;
    void *handle;
    int i;

    apr_pool_create(&tmp, p);
    before = open_fds(tmp);
    handle = wrapped_init(p, s, name);
    after = open_fds(tmp);
    for (i = 0; i < after->nelts; i++) {
        int fd = APR_ARRAY_IDX(after, i, int);
        if (!contains(before, fd)) {
            pc_logfd_t *lf = apr_array_push(log_fds);
            lf->s = s;
            lf->fd = fd;
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
        dup2(with, fd);     /* keeps the flags' CLOEXEC off: re-set it */
        fcntl(fd, F_SETFD, FD_CLOEXEC);
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

/* httpd opens an error log named by several vhosts once: if one of them
 * is this pool's, the file is this pool's too. */
static int error_log_of_pool(int fd, int pool)
{
    server_rec *s;

    for (s = ap_server_conf->next; s != NULL; s = s->next) {
        if (!owned_elsewhere(s, pool) && error_log_fd(s) == fd) {
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
    server_rec *s;
    int i;

    for (i = 0; log_fds != NULL && i < log_fds->nelts; i++) {
        pc_logfd_t *lf = &APR_ARRAY_IDX(log_fds, i, pc_logfd_t);
        if (owned_elsewhere(lf->s, pool)) {
            replace_fd(lf->fd, devnull);
        }
    }
    for (s = ap_server_conf->next; s != NULL; s = s->next) {
        int fd = error_log_fd(s);
        if (owned_elsewhere(s, pool) && fd != main_err
            && !error_log_of_pool(fd, pool)) {
            replace_fd(fd, main_err >= 0 ? main_err : devnull);
        }
    }
    if (devnull >= 0) {
        close(devnull);
    }
}
