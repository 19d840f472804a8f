"""The Chinese name of every event type, for `lookback audit history` and `/audit/history`.

Application layer: the kernel's history (shared/history.py) knows no service, so the names of the
services' events are given to it from here. A test checks that every event type of every service
has one.
"""
from __future__ import annotations

EVENT_LABELS: dict[str, str] = {
    "registry.ProjectRegistered": "登记项目",
    "registry.OperatorChanged": "变更运营主体",
    "registry.ServicesChanged": "变更服务内容",
    "registry.ProjectAssessed": "评估项目",
    "registry.ProjectRetired": "项目退出",
    "registry.LedgerEntryAdded": "列入问题台账",
    "registry.LedgerEntryRectified": "台账问题整改完成（已销号，待复评）",
    "registry.LedgerRectificationReopened": "台账问题整改反弹，恢复待整改",
    "registry.LedgerEntryCleared": "移出问题台账",
    "registry.AdaptationProgrammeRegistered": "登记适老化改造项目",
    "registry.HouseholdsRegistered": "登记改造户",
    "registry.LiaisonRegistered": "登记联络员",
    "rectification.ProblemRegistered": "登记问题",
    "rectification.RectificationStarted": "开始整改",
    "rectification.CloseOutRequested": "申请销号",
    "rectification.CloseOutVerified": "核验销号",
    "rectification.CloseOutReturned": "退回销号申请",
    "rectification.ExtensionRequested": "申请延期",
    "rectification.ExtensionDecided": "审批延期",
    "rectification.ProblemReopened": "问题重新打开",
    "rectification.ProblemWithdrawn": "撤回问题",
    "rectification.EvidenceReuseFlagged": "发现佐证材料重复使用",
    "rectification.SeqNoAllocated": "分配问题序号",
    "rectification.MonthlyListSubmitted": "报送月度清单",
    "rectification.MonthlyListReturned": "退回月度清单",
    "rectification.SelfInspectionReportSubmitted": "报送自查报告",
    "rectification.TypicalCaseSubmitted": "报送典型案例",
    "rectification.ReportReviewed": "审阅报告",
    "rectification.PointsDeducted": "扣分",
    "inspection.FrameFrozen": "冻结抽样框",
    "inspection.EntropyCommitted": "承诺随机数来源",
    "inspection.EntropyRevealed": "公布随机数",
    "inspection.SampleDrawn": "抽取样本",
    "inspection.DiscretionaryPickAdded": "自由裁量增加抽查对象",
    "inspection.HouseholdReplaced": "替补改造户",
    "inspection.VisitScheduled": "安排实地检查",
    "inspection.VisitRecorded": "记录检查结果",
    "inspection.FindingRecorded": "记录检查发现的问题",
}
