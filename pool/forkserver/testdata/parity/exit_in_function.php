<?php
function leave(int $code): void
{
    echo "leaving with $code\n";
    exit($code);
}
function outer(): void
{
    try {
        leave(7);
    } finally {
        echo "finally does not run on exit\n";
    }
}
outer();
echo "never\n";
