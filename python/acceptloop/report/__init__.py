"""`acceptloop report`: the comparison report (report/index.html and report/REPORT.md).

    build.py        reads the results, builds the templates' context, writes both files
    cells.py        the matrix's rows and cells and each cell's detail, as the templates print them
    walkthrough.py  the side-by-side walkthrough, extracted from the marked steps of the sources
    robustness.py   the robustness table: each robustness scenario's figure and grade per column
    performance.py  the performance section: where the benchmark's results come in
    bench_charts.py which of the benchmark's cells each chart shows
    bench_tables.py the benchmark's tables: every cell and its flags, the C core table, the targets
    charts.py       the charts' geometry (inline SVG, drawn by templates/report/chart.svg.j2)
    numbers.py      numbers as the report prints them (3 significant figures, units)
"""
