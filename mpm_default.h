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

/* mpm_default.h: perchild's defaults, overridable at build time. */

#ifndef APACHE_MPM_DEFAULT_H
#define APACHE_MPM_DEFAULT_H

/* Children of a pool whose size no directive gives. */
#ifndef DEFAULT_NUM_SERVERS
#define DEFAULT_NUM_SERVERS 1
#endif

/* Worker threads per child, as worker's default. */
#ifndef DEFAULT_THREADS_PER_CHILD
#define DEFAULT_THREADS_PER_CHILD 25
#endif

#ifndef DEFAULT_THREAD_LIMIT
#define DEFAULT_THREAD_LIMIT 64
#endif

/* Stack of each worker thread when ThreadStackSize is not set: small
 * enough that idle pools of many users stay cheap. */
#ifndef DEFAULT_THREAD_STACK_SIZE
#define DEFAULT_THREAD_STACK_SIZE (256 * 1024)
#endif

#endif /* APACHE_MPM_DEFAULT_H */
