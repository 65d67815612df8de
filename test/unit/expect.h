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

/* expect.h: the unit tests' one-line-per-case report ("ok  " or "FAIL"
 * and the case's name) and the closing "N passed, N failed" line that
 * test_unit_c.py reads. */

#ifndef PC_UNIT_EXPECT_H
#define PC_UNIT_EXPECT_H

#include <stdio.h>

static int passed, failed;

static void expect(const char *name, int ok)
{
    printf("%s %s\n", ok ? "ok  " : "FAIL", name);
    if (ok) {
        passed++;
    }
    else {
        failed++;
    }
}

/* The closing line; the exit status main() returns. */
static int expect_summary(void)
{
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}

#endif /* PC_UNIT_EXPECT_H */
