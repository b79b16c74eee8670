"""Words of the demo extracts: request categories and their phrasing, case types, target kinds.

Every text here must encode in GBK, because the grid channel's extract is written in GBK.
Weights are relative; the generator normalises them.
"""

from __future__ import annotations

# Request channels (来源渠道) and their shares of all requests.
CHANNELS: tuple[tuple[str, float], ...] = (
    ("12345热线", 0.45),
    ("12345网络", 0.15),
    ("网格员上报", 0.22),
    ("街道自采", 0.08),
    ("北京通APP", 0.06),
    ("微信小程序", 0.04),
)

# How each channel spells its coordinate system, with shares ("" = the file's default).
CRS_LABELS: dict[str, tuple[tuple[str, float], ...]] = {
    "12345热线": (("GCJ-02", 0.8), ("gcj02", 0.1), ("", 0.1)),
    "12345网络": (("GCJ-02", 0.8), ("gcj02", 0.1), ("", 0.1)),
    "网格员上报": (("WGS84", 0.7), ("CGCS2000", 0.3)),
    "街道自采": (("WGS84", 0.7), ("CGCS2000", 0.3)),
    "北京通APP": (("GCJ-02", 1.0),),
    "微信小程序": (("BD09", 0.6), ("百度", 0.4)),
}

# Request categories (诉求类别) with their weight in the uniform background.
CATEGORIES: dict[str, float] = {
    "环境卫生": 10.0,
    "违法建设": 5.0,
    "占道经营": 5.0,
    "噪声扰民": 8.0,
    "停车管理": 9.0,
    "供暖": 6.0,
    "物业管理": 10.0,
    "市容市貌": 6.0,
    "施工扰民": 4.0,
    "养犬": 3.0,
    "开墙打洞": 2.0,
    "群租房": 2.5,
    "道路维修": 5.0,
    "园林绿化": 3.0,
    "供水": 4.0,
    "老旧小区": 4.0,
    "咨询": 11.0,
}

# Multipliers near hotspots: landmark kinds, and hutong lanes.
HOTSPOT_BOOST: dict[str, dict[str, float]] = {
    "market": {
        "占道经营": 10.0,
        "环境卫生": 5.0,
        "市容市貌": 2.5,
        "噪声扰民": 1.5,
        "停车管理": 1.5,
    },
    "station": {"停车管理": 7.0, "占道经营": 5.0, "市容市貌": 2.0, "环境卫生": 1.5},
    "construction_site": {"施工扰民": 18.0, "噪声扰民": 4.0, "道路维修": 2.0, "环境卫生": 1.5},
    "compound": {
        "物业管理": 5.0,
        "供暖": 3.0,
        "老旧小区": 6.0,
        "供水": 2.5,
        "养犬": 2.0,
        "群租房": 1.5,
    },
    "school": {"停车管理": 3.0, "占道经营": 2.5, "噪声扰民": 1.2},
    "hospital": {"停车管理": 6.0, "占道经营": 2.5, "市容市貌": 1.5},
    "park": {"园林绿化": 7.0, "养犬": 4.0, "环境卫生": 2.5, "噪声扰民": 1.8},
    "office": {"停车管理": 2.5, "市容市貌": 1.8, "咨询": 1.5},
    "hutong": {
        "违法建设": 5.0,
        "开墙打洞": 7.0,
        "停车管理": 3.0,
        "环境卫生": 2.5,
        "群租房": 2.0,
        "市容市貌": 1.5,
    },
}

# How strongly each landmark kind draws requests, and how far they spread (metres, 1 sigma).
HOTSPOT_PULL: dict[str, tuple[float, float]] = {
    "market": (3.0, 60.0),
    "station": (2.5, 80.0),
    "construction_site": (3.0, 50.0),
    "compound": (1.5, 70.0),
    "school": (1.0, 70.0),
    "hospital": (1.5, 70.0),
    "park": (1.0, 90.0),
    "office": (0.8, 80.0),
}

# Monthly multipliers (January first); categories not listed are flat over the year.
SEASON: dict[str, tuple[float, ...]] = {
    "供暖": (3.2, 2.4, 1.2, 0.1, 0.02, 0.02, 0.02, 0.02, 0.02, 0.5, 3.8, 3.6),
    "噪声扰民": (0.8, 0.8, 0.9, 1.0, 1.1, 1.3, 1.4, 1.4, 1.1, 1.0, 0.8, 0.8),
    "施工扰民": (0.5, 0.4, 1.0, 1.3, 1.3, 1.3, 1.2, 1.2, 1.3, 1.2, 1.0, 0.6),
    "园林绿化": (0.4, 0.4, 1.0, 1.6, 1.7, 1.5, 1.4, 1.3, 1.1, 1.0, 0.7, 0.4),
    "养犬": (0.8, 0.8, 1.0, 1.1, 1.2, 1.2, 1.2, 1.2, 1.1, 1.0, 0.8, 0.8),
    "供水": (1.0, 0.9, 0.9, 0.9, 1.0, 1.2, 1.3, 1.3, 1.0, 0.9, 0.9, 1.1),
    "占道经营": (0.7, 0.7, 0.9, 1.1, 1.2, 1.3, 1.3, 1.3, 1.1, 1.0, 0.9, 0.7),
}

# Grid officers and street staff report what they see on patrol, rarely what happens indoors.
PATROL_BIAS: dict[str, float] = {
    "市容市貌": 3.0,
    "环境卫生": 2.0,
    "占道经营": 2.5,
    "违法建设": 2.0,
    "开墙打洞": 2.0,
    "停车管理": 1.5,
    "道路维修": 1.5,
    "园林绿化": 1.5,
    "施工扰民": 0.8,
    "养犬": 0.5,
    "群租房": 0.6,
    "老旧小区": 0.3,
    "噪声扰民": 0.2,
    "物业管理": 0.2,
    "供水": 0.2,
    "供暖": 0.05,
    "咨询": 0.05,
}

# Hours from response to 办结: (median, sigma of the log). Others use DEFAULT_RESOLUTION.
RESOLUTION_HOURS: dict[str, tuple[float, float]] = {
    "供暖": (18.0, 0.9),
    "供水": (12.0, 0.9),
    "咨询": (8.0, 1.0),
    "违法建设": (216.0, 0.7),
    "群租房": (192.0, 0.7),
    "老旧小区": (240.0, 0.7),
    "开墙打洞": (168.0, 0.7),
    "物业管理": (96.0, 0.8),
}
DEFAULT_RESOLUTION = (96.0, 0.9)
URGENT = frozenset(("供暖", "供水"))

# Shift of the log-odds that the caller says the problem was solved.
SOLVED_SHIFT: dict[str, float] = {
    "违法建设": -0.8,
    "群租房": -0.7,
    "老旧小区": -0.9,
    "物业管理": -0.5,
    "开墙打洞": -0.4,
    "停车管理": -0.3,
    "噪声扰民": -0.2,
    "供暖": -0.2,
    "咨询": 0.9,
    "道路维修": 0.3,
    "园林绿化": 0.3,
    "环境卫生": 0.3,
}

PERIODS = ("每天晚上", "最近一周", "周末", "每天早上", "连续几天", "夜里十点以后", "长期")

# Complaint texts; {place} is a house number on a lane or a landmark.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "环境卫生": (
        "{place}附近垃圾桶满溢无人清运，异味很大，请尽快处理。",
        "{place}门口堆放大量生活垃圾，{period}无人清理。",
        "{place}周边公厕卫生状况差，希望加强保洁。",
        "{place}路边小广告和垃圾很多，影响环境。",
    ),
    "违法建设": (
        "{place}院内有人私搭乱建，加盖房屋，请相关部门查处。",
        "{place}楼顶有违法建设，存在安全隐患。",
        "{place}有住户在院内加建彩钢房，请核实处理。",
    ),
    "占道经营": (
        "{place}门口有人占道经营，影响通行，请尽快处理。",
        "{place}附近{period}有商贩摆摊，占用人行道。",
        "{place}周边早市商贩占道，垃圾遍地。",
        "{place}商户把货物摆到门外，行人只能走机动车道。",
    ),
    "噪声扰民": (
        "{place}附近{period}有噪音，严重影响休息。",
        "{place}底商音响声音过大，扰民严重。",
        "{place}楼上住户深夜噪音，多次沟通无果。",
    ),
    "停车管理": (
        "{place}门口车辆乱停乱放，堵塞消防通道。",
        "{place}附近共享单车堆积，影响通行。",
        "{place}有车辆长期占用车位，僵尸车无人处理。",
        "{place}胡同内停车混乱，车辆无法通行。",
    ),
    "供暖": (
        "{place}暖气不热，室内温度只有{temp}度，请尽快处理。",
        "{place}暖气管道漏水，请供热单位维修。",
        "{place}至今未供暖，家中有老人孩子，请协调。",
    ),
    "物业管理": (
        "{place}物业不作为，楼道灯坏了很久没人修。",
        "{place}电梯经常故障，物业不处理。",
        "{place}物业乱收费，请相关部门监管。",
    ),
    "市容市貌": (
        "{place}沿街牌匾破损，存在安全隐患。",
        "{place}架空线杂乱，影响市容。",
        "{place}墙面乱涂乱画，请清理。",
    ),
    "施工扰民": (
        "{place}工地夜间施工，噪音扰民。",
        "{place}附近施工扬尘严重，未采取覆盖措施。",
        "{place}工地渣土车进出，道路遗撒严重。",
    ),
    "养犬": (
        "{place}有人遛狗不拴绳，存在安全隐患。",
        "{place}附近流浪狗较多，请处理。",
        "{place}邻居家的狗{period}叫，影响休息。",
    ),
    "开墙打洞": (
        "{place}有商户私自开墙打洞经营，请查处。",
        "{place}临街住宅被改成门脸房，请核实。",
    ),
    "群租房": (
        "{place}有群租房，居住人员复杂，存在安全隐患。",
        "{place}一套房住了十几个人，请相关部门检查。",
    ),
    "道路维修": (
        "{place}路面坑洼不平，雨天积水，请维修。",
        "{place}井盖破损，存在安全隐患。",
        "{place}人行道方砖松动，请修复。",
    ),
    "园林绿化": (
        "{place}树木枝杈遮挡窗户，请修剪。",
        "{place}绿地被毁，请恢复。",
        "{place}有枯树存在倒伏隐患。",
    ),
    "供水": (
        "{place}停水{period}，没有接到通知。",
        "{place}自来水水压低，高层用不上水。",
        "{place}水管爆裂，请尽快抢修。",
    ),
    "老旧小区": (
        "{place}楼体外墙脱落，请纳入老旧小区改造。",
        "{place}楼内管线老化，希望尽快改造。",
        "{place}没有电梯，老人上下楼困难，希望加装电梯。",
    ),
    "咨询": (
        "咨询{place}所在社区的居住证办理流程。",
        "咨询{place}附近老旧小区改造的进度。",
        "咨询{place}周边停车位收费标准。",
    ),
}

# Unparseable dates as they turn up in exports, by the file's date style.
BAD_DATES: dict[str, tuple[str, ...]] = {
    "iso": ("2026-13-45 25:61", "昨天下午", "#VALUE!", "0000-00-00 00:00:00", "上午九点多"),
    "slash": ("2026/13/45 25:61", "昨天下午", "#VALUE!", "0000/0/0 0:00", "上午九点多"),
    "excel": ("2026-13-45 25:61", "昨天下午", "#VALUE!", "########", "上午九点多"),
}

# Enforcement case types: weight, time limit in days, lead agency, agencies that may join.
CASE_TYPES: dict[str, tuple[float, int, str, tuple[str, ...]]] = {
    "占道经营": (22.0, 15, "城管执法队", ("市场监管所", "派出所")),
    "违法建设": (14.0, 60, "城管执法队", ("派出所", "消防救援支队")),
    "无照经营": (10.0, 30, "市场监管所", ("城管执法队", "派出所")),
    "消防隐患": (9.0, 30, "消防救援支队", ("派出所", "城管执法队")),
    "违规停车": (14.0, 7, "交通支队", ("城管执法队",)),
    "噪声污染": (8.0, 30, "生态环境局", ("城管执法队", "派出所")),
    "渣土运输": (6.0, 15, "城管执法队", ("交通支队", "生态环境局")),
    "违规户外广告": (7.0, 30, "城管执法队", ("市场监管所",)),
    "食品安全": (6.0, 30, "市场监管所", ("城管执法队",)),
    "群租房": (4.0, 30, "派出所", ("消防救援支队", "城管执法队")),
}

CASE_BOOST: dict[str, dict[str, float]] = {
    "market": {"占道经营": 5.0, "无照经营": 4.0, "食品安全": 4.0, "消防隐患": 2.0},
    "station": {"违规停车": 5.0, "占道经营": 4.0},
    "construction_site": {"渣土运输": 12.0, "噪声污染": 5.0, "违法建设": 2.0},
    "compound": {"群租房": 4.0, "违法建设": 2.0, "消防隐患": 2.0},
    "school": {"违规停车": 4.0, "占道经营": 2.0, "食品安全": 2.0},
    "hospital": {"违规停车": 4.0, "占道经营": 2.0},
    "office": {"违规户外广告": 3.0, "违规停车": 2.0},
    "hutong": {"违法建设": 5.0, "消防隐患": 3.0, "违规停车": 3.0, "群租房": 2.5},
}

CASE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "占道经营": (
        "{place}有商贩占道经营，执法队员现场责令改正。",
        "巡查发现{place}商户店外经营，经教育拒不改正，依法立案。",
    ),
    "违法建设": (
        "{place}院内新建违法建设，已下达限期拆除通知。",
        "接群众举报{place}楼顶搭建彩钢房，经核实立案查处。",
    ),
    "无照经营": (
        "{place}一商户未取得营业执照从事经营活动。",
        "检查发现{place}存在无照经营行为，依法立案调查。",
    ),
    "消防隐患": (
        "{place}楼道堆放杂物，堵塞疏散通道。",
        "{place}电动自行车楼内充电，存在火灾隐患。",
    ),
    "违规停车": (
        "{place}车辆违规停放，占用消防通道。",
        "{place}路段机动车长期违停，影响通行。",
    ),
    "噪声污染": (
        "{place}工地夜间违规施工，噪声超标。",
        "{place}商户使用高音喇叭招揽顾客。",
    ),
    "渣土运输": (
        "{place}渣土车未密闭运输，沿途遗撒。",
        "{place}工地运输车辆带泥上路。",
    ),
    "违规户外广告": (
        "{place}未经审批设置户外广告牌匾。",
        "{place}沿街商户违规悬挂条幅。",
    ),
    "食品安全": (
        "{place}餐饮店卫生条件不达标，后厨存在安全隐患。",
        "{place}流动摊贩无证销售食品。",
    ),
    "群租房": (
        "{place}存在群租现象，违规分隔出租。",
        "{place}地下室违规住人，联合检查后立案。",
    ),
}

CASE_STATUSES = ("立案", "调查取证", "处罚决定", "已结案")

# Relocation targets (疏解目标): weight among the generated ones, floor area (m²), merchants.
TARGET_KINDS: dict[str, tuple[float, tuple[float, float], tuple[int, int]]] = {
    "物流仓储": (0.20, (1_000.0, 8_000.0), (5, 60)),
    "违法建设": (0.30, (50.0, 800.0), (0, 3)),
    "低端业态": (0.22, (100.0, 2_000.0), (1, 30)),
    "地下空间": (0.15, (300.0, 5_000.0), (10, 120)),
    "商品交易市场": (0.13, (2_000.0, 15_000.0), (80, 500)),
}
WHOLESALE = "区域性批发市场"
WHOLESALE_AREA = (15_000.0, 60_000.0)
WHOLESALE_MERCHANTS = (400, 2_500)
TARGET_STATUSES = ("未启动", "进行中", "已完成", "已验收")
LOW_END = ("废品回收站", "小旅馆", "小作坊", "汽修店", "小商品店", "美发店")

# The zoo wholesale-market cluster (动物园批发市场), if the geography lacks its landmarks.
ZOO_MARKETS = (
    "天皓成服装批发市场",
    "金开利德服装批发市场",
    "众合服装批发市场",
    "世纪天乐国际服装批发市场",
    "东鼎服装批发市场",
    "聚龙服装批发市场",
    "天和白马服装批发市场",
    "万容天地服装批发市场",
)
ZOO_STREET = "110102009"

# Renovation projects (整治提升 / 改造): kind and share.
PROJECT_KINDS: dict[str, float] = {
    "背街小巷整治": 0.5,
    "老旧小区改造": 0.25,
    "街区更新": 0.15,
    "立面整治": 0.10,
}
PROJECT_PHASES = ("规划", "设计", "施工", "验收", "完成")
# A lane's rectification status → the phases its project may be in.
LANE_PHASES: dict[str, tuple[str, ...]] = {
    "未整治": ("规划", "设计"),
    "整治中": ("施工",),
    "已整治": ("验收", "完成"),
    "已验收": ("完成",),
}
