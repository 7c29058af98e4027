"""`acceptloop report`: the comparison report (report/index.html and report/REPORT.md).

    build.py        reads the results, builds the templates' context, writes both files
    cells.py        the matrix's rows and cells and each cell's detail, as the templates print them
    walkthrough.py  the side-by-side walkthrough, extracted from the marked steps of the sources
    performance.py  the performance section: where the benchmark's results come in
"""
