<?php
function helper(): string
{
    return 'helper from ' . basename(__DIR__) . '/' . basename(__FILE__);
}
