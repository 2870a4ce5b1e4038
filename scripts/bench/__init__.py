"""The benchmarks behind ``attn bench``, in one place: what each measures lives in a module named
after what it measures (``envs``, ``qlearning``, ``glimpse``, ``analysis``), and what they share,
the timing, the fresh processes and the peak memory, in :mod:`scripts.bench.timing`. Each
subcommand's results are a :class:`scripts.bench.report.Report`: written as JSON, and rendered into
the docs page that holds its section only when asked (``--write-docs``)."""
