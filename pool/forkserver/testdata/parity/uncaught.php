<?php
function thrower(string $why): never
{
    throw new RuntimeException("uncaught: $why");
}
echo "before\n";
if (($argv[1] ?? '') === 'top') {
    throw new LogicException('thrown at the top level');
}
thrower('in a function');
