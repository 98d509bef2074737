<?php
echo mt_rand(), ' ', rand(), ' ', lcg_value(), ' ', uniqid('', true), "\n";
