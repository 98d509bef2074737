<?php
function subHelper(): string
{
    return 'sub helper, found beside the including script';
}
