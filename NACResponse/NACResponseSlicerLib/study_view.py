"""Show a patient's timepoints: volumes named ``P012 pre DCE-early`` in subject-hierarchy folders,
two timepoints side by side in linked axial views with a readable window/level."""

from __future__ import annotations

import slicer

from .naming import timepoint_folder_name, volume_name
from .volumes import loadImageFile, setWindowLevelFromData

#: Views of the side-by-side layout (vtkMRMLLayoutNode.SlicerLayoutSideBySideView): Red | Yellow.
SIDE_BY_SIDE_VIEWS = ("Red", "Yellow")

#: Red | Yellow above a table view: two timepoints with a result table (the top features of a
#: prediction next to its Grad-CAM maps).  Registered on the layout node on first use.
SIDE_BY_SIDE_TABLE_LAYOUT = 18301
SIDE_BY_SIDE_TABLE_DESCRIPTION = """<layout type="vertical" split="true">
 <item splitSize="700"><layout type="horizontal">
  <item><view class="vtkMRMLSliceNode" singletontag="Red"><property name="orientation" action="default">Axial</property>
   <property name="viewlabel" action="default">R</property><property name="viewcolor" action="default">#F34A33</property></view></item>
  <item><view class="vtkMRMLSliceNode" singletontag="Yellow"><property name="orientation" action="default">Axial</property>
   <property name="viewlabel" action="default">Y</property><property name="viewcolor" action="default">#EDD54C</property></view></item>
 </layout></item>
 <item splitSize="300"><view class="vtkMRMLTableViewNode" singletontag="TableView1">
  <property name="viewlabel" action="default">T</property></view></item>
</layout>"""


def layoutNode():
    """The scene's layout node (Slicer's layout manager makes it; the views follow its arrangement)."""
    return slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLLayoutNode")


def setLayout(layoutId: int, description: str | None = None) -> None:
    node = layoutNode()
    if node is None:
        return
    if description is not None and not node.IsLayoutDescription(layoutId):
        node.AddLayoutDescription(layoutId, description)
    node.SetViewArrangement(layoutId)


def layoutShowsTable() -> bool:
    node = layoutNode()
    return node is not None and node.GetViewArrangement() in (
        slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView, SIDE_BY_SIDE_TABLE_LAYOUT)


def subjectFolder(patientId: str, timepoint: str | None = None) -> int:
    """Subject item for the patient (and a folder item per timepoint), created once and reused."""
    shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
    sceneItem = shNode.GetSceneItemID()
    subjectItem = shNode.GetItemChildWithName(sceneItem, patientId)
    if not subjectItem:
        subjectItem = shNode.CreateSubjectItem(sceneItem, patientId)
    if timepoint is None:
        return subjectItem
    folderName = timepoint_folder_name(patientId, timepoint)
    folderItem = shNode.GetItemChildWithName(subjectItem, folderName)
    if not folderItem:
        folderItem = shNode.CreateFolderItem(subjectItem, folderName)
    return folderItem


def placeInFolder(node, patientId: str, timepoint: str) -> None:
    shNode = slicer.mrmlScene.GetSubjectHierarchyNode()
    shNode.SetItemParent(shNode.GetItemByDataNode(node), subjectFolder(patientId, timepoint))


def findLoadedVolume(name: str):
    for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
        if node.GetName() == name and not node.IsA("vtkMRMLLabelMapVolumeNode"):
            return node
    return None


def loadTimepointImage(store, patientId: str, timepoint: str, imageKey: str):
    """Load (once) one image of one timepoint from a StudyStore and return its volume node."""
    name = volume_name(patientId, timepoint, imageKey)
    existing = findLoadedVolume(name)
    if existing is not None:
        return existing
    image = store.cohort[patientId].timepoint(timepoint).image(imageKey)
    volumeNode = loadImageFile(str(store.path(image.path)), name)
    setWindowLevelFromData(volumeNode)
    placeInFolder(volumeNode, patientId, timepoint)
    return volumeNode


def showSideBySide(leftVolume, rightVolume, withTable: bool = False) -> None:
    """Left | right in linked axial slice views, each fitted to its volume (above a table view with
    ``withTable``, so a result table shown with the images stays visible)."""
    if withTable:
        setLayout(SIDE_BY_SIDE_TABLE_LAYOUT, SIDE_BY_SIDE_TABLE_DESCRIPTION)
    else:
        setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView)
    layoutManager = slicer.app.layoutManager()
    if layoutManager is None:  # no main window (testing without GUI)
        return
    for viewName, volumeNode in zip(SIDE_BY_SIDE_VIEWS, (leftVolume, rightVolume)):
        sliceWidget = layoutManager.sliceWidget(viewName)
        if sliceWidget is None or volumeNode is None:
            continue
        sliceLogic = sliceWidget.sliceLogic()
        compositeNode = sliceLogic.GetSliceCompositeNode()
        compositeNode.SetBackgroundVolumeID(volumeNode.GetID())
        compositeNode.SetLinkedControl(True)
        sliceWidget.mrmlSliceNode().SetOrientationToAxial()
        sliceLogic.FitSliceToBackground()


def showOnlyInView(node, viewName: str | None) -> None:
    """Show a node in one slice view only (None: in every view).  Two timepoints' 2D images share one
    plane, so without this each view would draw both timepoints' markups."""
    viewNodeIds = [f"vtkMRMLSliceNode{viewName}"] if viewName else []
    for index in range(node.GetNumberOfDisplayNodes()):
        displayNode = node.GetNthDisplayNode(index)
        if displayNode is not None:
            displayNode.SetViewNodeIDs(viewNodeIds)


def showOverlay(viewName: str, overlayVolume, opacity: float) -> None:
    """``overlayVolume`` as the foreground of one slice view (e.g. a Grad-CAM map over its image)."""
    layoutManager = slicer.app.layoutManager()
    if layoutManager is None or overlayVolume is None:
        return
    sliceWidget = layoutManager.sliceWidget(viewName)
    if sliceWidget is None:
        return
    compositeNode = sliceWidget.sliceLogic().GetSliceCompositeNode()
    compositeNode.SetForegroundVolumeID(overlayVolume.GetID())
    compositeNode.SetForegroundOpacity(opacity)
