#!/usr/bin/env php
<?php
echo "after the shebang line\n";
