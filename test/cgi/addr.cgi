#!/bin/sh
# Prints the uid that runs it and the client address httpd gave it.
printf 'Content-Type: text/plain\n\nuid=%s\naddr=%s\n' "$(id -u)" "$REMOTE_ADDR"
