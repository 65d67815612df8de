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

/* pc_nofile.c: the open files limit, raised to what the pools need.
 *
 * Every pool costs descriptors: the parent holds a pipe of death and
 * the two ends of a hand-off channel per pool (per CPU way with
 * PerchildCPUAffinity), every child a sending end per pool it may pass
 * to, and every process httpd's copy of each vhost's own log files.  A
 * host with hundreds of tenants goes past a shell's usual 1024, and a
 * graceful restart that adds tenants would then fail half-way ("could
 * not open the pipe of death") and take the running server down with
 * it.  The parent (root, before any of those are opened) raises its
 * limit, which the children inherit, to an estimate with room to spare;
 * it never lowers it. */

#include "perchild.h"
#include "pc_nofile.h"
#include "http_log.h"
#include "http_main.h"

#include <sys/resource.h>
#include <unistd.h>

APLOG_USE_MODULE(mpm_perchild);

/* Descriptors a process needs besides the pools': standard ones,
 * listeners, modules' files, a worker's epoll set per thread, clients. */
#define PC_NOFILE_BASE 1024

static rlim_t estimate(server_rec *s)
{
    rlim_t vhosts = 0, ways = 1, pools = pc_conf->pools->nelts;
    server_rec *vs;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    for (vs = s; vs != NULL; vs = vs->next) {
        vhosts++;
    }
    if (pc_conf->cpu_affinity && cpus > 1) {
        ways = (rlim_t)cpus;
    }
    /* Per pool: pod (2), channel ends (2 per way) in the parent, a
     * sending end per way in each child; per vhost: an error log and a
     * couple of access logs.  Doubled for a graceful restart, when
     * both generations' channels and logs are open for a moment. */
    return PC_NOFILE_BASE + 2 * (pools * (2 + 3 * ways) + 4 * vhosts)
           + (rlim_t)pc_conf->thread_limit;
}

void pc_nofile_raise(server_rec *s, int startup)
{
    struct rlimit rl;
    rlim_t want = estimate(s), was;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY
        || rl.rlim_cur >= want) {
        return;
    }
    was = rl.rlim_cur;
    rl.rlim_cur = want;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
        rl.rlim_max = want;       /* root may raise the hard limit too */
    }
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
        ap_log_error(APLOG_MARK, APLOG_INFO | (startup ? APLOG_STARTUP : 0),
                     0, startup ? NULL : s,
                     "PC0116: open files limit raised from %lu to %lu for "
                     "%d pools", (unsigned long)was, (unsigned long)want,
                     pc_conf->pools->nelts);
        return;
    }
    /* Not allowed (no CAP_SYS_RESOURCE, or above fs.nr_open): as far as
     * the hard limit goes, and say so. */
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ap_log_error(APLOG_MARK, APLOG_WARNING | (startup ? APLOG_STARTUP : 0),
                 0, startup ? NULL : s,
                 "PC0117: the open files limit is %lu, and %d pools may "
                 "need about %lu descriptors: raise it (ulimit -n, or "
                 "APACHE_ULIMIT_MAX_FILES in /etc/apache2/envvars)",
                 (unsigned long)rl.rlim_cur, pc_conf->pools->nelts,
                 (unsigned long)want);
}
