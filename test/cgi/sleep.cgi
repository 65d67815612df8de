#!/bin/sh
# Sleeps QUERY_STRING seconds (a whole number, at most 10), then answers
# with the uid that ran it.
n=${QUERY_STRING:-1}
case "$n" in ''|*[!0-9]*) n=1 ;; esac
[ "$n" -gt 10 ] && n=10
sleep "$n"
printf 'Content-Type: text/plain\n\nuid=%s\n' "$(id -u)"
