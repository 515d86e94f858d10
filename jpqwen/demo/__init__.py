"""The presenter's demo: the same prompt through every stage, side by side,
with load time, time to first token, tokens/s and memory. Terminal mode
(:mod:`jpqwen.demo.terminal`) and a web page (:mod:`jpqwen.demo.web`)."""
