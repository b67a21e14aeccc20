"""Tables and plots in the scene: data frames -> ``vtkMRMLTableNode``, columns -> plot charts."""

from __future__ import annotations

import slicer
import vtk

from .table_data import table_columns

_ARRAY_TYPES = {"double": vtk.vtkDoubleArray, "int": vtk.vtkIntArray, "int64": vtk.vtkLongLongArray,
                "string": vtk.vtkStringArray}


def tableNodeFromDataFrame(frame, name: str, tableNode=None, maxRows: int | None = None):
    """Replace the content of ``tableNode`` (or a new one named ``name``) with a data frame."""
    if tableNode is None:
        tableNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", name)
    wasModifying = tableNode.StartModify()
    try:
        tableNode.RemoveAllColumns()
        for column in table_columns(frame, max_rows=maxRows):
            array = _ARRAY_TYPES[column.kind]()
            array.SetName(column.name)
            for value in column.values:
                array.InsertNextValue(value)
            tableNode.AddColumn(array)
        tableNode.SetName(name)
    finally:
        tableNode.EndModify(wasModifying)
    return tableNode


def showTable(tableNode) -> None:
    """Show a table in the table view; the layout changes only when the current one has none."""
    from .study_view import layoutShowsTable, setLayout

    if not layoutShowsTable():
        setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
    slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(tableNode.GetID())
    slicer.app.applicationLogic().PropagateTableSelection()


def namedNode(className: str, name: str):
    """The scene's node of this class and name (reused when a panel shows a result again), or None."""
    for node in slicer.util.getNodesByClass(className):
        if node.GetName() == name:
            return node
    return None


def plotChart(tableNode, xColumn: str, yColumns: list[str], title: str, xTitle: str, yTitle: str,
              chartNode=None, lineOnly: bool = True, show: bool = True):
    """A chart with one series per y column of one table."""
    series = [(tableNode, xColumn, yColumn, f"{title} {yColumn}") for yColumn in yColumns]
    return plotSeriesChart(series, title, xTitle, yTitle, chartNode, lineOnly, show)


def plotSeriesChart(series, title: str, xTitle: str, yTitle: str, chartNode=None, lineOnly: bool = True,
                    show: bool = True):
    """A chart (reused by name) with one series per ``(tableNode, xColumn, yColumn, seriesName)``, e.g.
    one ROC curve per model; the chart's previous series nodes are removed from the scene."""
    if chartNode is None:
        chartNode = namedNode("vtkMRMLPlotChartNode", title)
    if chartNode is None:
        chartNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLPlotChartNode", title)
    old = [chartNode.GetNthPlotSeriesNode(i) for i in range(chartNode.GetNumberOfPlotSeriesNodes())]
    chartNode.RemoveAllPlotSeriesNodeIDs()
    for node in old:
        if node is not None:
            slicer.mrmlScene.RemoveNode(node)
    for tableNode, xColumn, yColumn, name in series:
        seriesNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", name)
        seriesNode.SetAndObserveTableNodeID(tableNode.GetID())
        seriesNode.SetXColumnName(xColumn)
        seriesNode.SetYColumnName(yColumn)
        seriesNode.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
        if lineOnly:
            seriesNode.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
        chartNode.AddAndObservePlotSeriesNodeID(seriesNode.GetID())
    chartNode.SetTitle(title)
    chartNode.SetXAxisTitle(xTitle)
    chartNode.SetYAxisTitle(yTitle)
    if show:
        slicer.modules.plots.logic().ShowChartInLayout(chartNode)
    return chartNode
